"""Personal data: what the contract marks secret or personal, and crypto-shredding.

- :mod:`pii.annotations` reads the ``cqrs.privacy.v1`` options from the
  compiled descriptors (which fields of which event are secret or personal);
- :mod:`pii.codec` applies them generically to JSON payloads: redaction of
  secrets, encryption of personal fields with the subject's data key, and
  the ``[ERASED]`` marker once that key is gone;
- :mod:`pii.keystore` keeps the per-subject data keys (wrapped by a master
  key) in a SQLite file apart from the events; erasure deletes a key;
- :mod:`pii.settings` says where that file and the master key are.
"""
