"""The fakes: Avito (OAuth, Messenger API, webhooks), n8n (a receiver that plays BatteryCRM's workflows) and
speech-to-text, with what they share: the clock, fault rules, the journal, the control plane, scenarios and
the ``SIM_*`` settings. A fake never imports the judge, the stack or the gateway."""
