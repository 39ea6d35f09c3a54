"""The AWS target drivers: EC2 instances for `cloud_vm`, S3 buckets for `storage_bucket`.

They speak the AWS API through boto3, to AWS itself or to an endpoint that imitates it (moto in
the local stack): switching is a matter of `endpoint_url` and credentials. Everything they create
is tagged with the request that created it (`provisioning:request-id`, the ownership mark), and
they only change or remove what carries that tag.

boto3 blocks, so each call runs in a worker thread, bounded by botocore's connect and read
timeouts; each driver call as a whole is bounded by an asyncio timeout, waits included.

`ec2` and `s3` are the drivers; `clients` is what they share (the target, its clients, the tags,
the errors).
"""
