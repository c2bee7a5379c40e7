"""A release from first canary pod to promotion or rollback: decisions, record, driver."""
