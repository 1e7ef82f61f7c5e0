"""Alert delivery to webhooks, per the Standard Webhooks specification (docs/webhooks.md)."""
