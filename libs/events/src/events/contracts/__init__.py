"""Event contracts, one module per producing service; `ALL_EVENTS` lists every one of them."""

from events.contracts import (
    allocation,
    configuration,
    deployment,
    processing,
    requests,
    validation,
)
from events.envelope import Event

ALL_EVENTS: tuple[type[Event], ...] = (
    requests.RequestSubmitted,
    requests.CancellationRequested,
    requests.CompensationRetryRequested,
    requests.LeaseExpiring,
    requests.LeaseExtended,
    requests.RequestApproved,
    requests.RequestDenied,
    requests.VerificationRequested,
    validation.RequestValidated,
    validation.RequestRejected,
    validation.ValidationFailed,
    validation.ApprovalRequired,
    allocation.ResourceAllocated,
    allocation.AllocationFailed,
    allocation.AllocationReleased,
    allocation.AllocationBackordered,
    allocation.QuotaWarningReached,
    configuration.ResourceConfigured,
    configuration.ConfigurationFailed,
    configuration.ConfigurationRolledBack,
    deployment.ResourceDeployed,
    deployment.ResourceVerified,
    deployment.ProvisioningCompleted,
    deployment.ProvisioningFailed,
    deployment.DeploymentRolledBack,
    deployment.CompensationFailed,
    deployment.DriftDetected,
    deployment.DriftResolved,
    deployment.ResourcePurged,
    processing.ProcessingRetried,
)
