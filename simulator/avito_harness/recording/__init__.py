"""What Avito really did, recorded and played back: a recording proxy (:mod:`.proxy`) writes HAR 1.2
(:mod:`.har`), secrets masked as they are written and personal data optionally replaced (:mod:`.anonymize`);
:mod:`.replay` turns a recording into the fake Avito's scenario (its answers, in order) and its webhooks."""
