"""Finding requests and resources: filters, SCIM-style filter expressions, sorting and cursor
pagination."""
