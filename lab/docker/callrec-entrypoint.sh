#!/bin/sh
# Lab keys on first start (age identity + recipient, Ed25519 signing key) in the state volume; the
# service gets only the PUBLIC recipient (identity_file is configured for playback in the page).
set -eu
KEYS=/var/lib/callrec/keys
python3 /usr/local/lib/callrec-lab/lab_keys.py "$KEYS"
CALLREC_ENCRYPTION_RECIPIENTS="$(cat "$KEYS/recipient.txt")"
export CALLREC_ENCRYPTION_RECIPIENTS
exec "$@"
