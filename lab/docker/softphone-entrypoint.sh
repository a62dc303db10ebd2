#!/bin/sh
# Render and start the phones for both PBXes, then wait; SIGTERM (docker stop) stops them by pid.
set -eu
PHONES=/lab/softphone/phones.py
python3 "$PHONES" setup --pbx freeswitch --dir /phones/freeswitch
python3 "$PHONES" setup --pbx asterisk --dir /phones/asterisk
python3 "$PHONES" start --dir /phones/freeswitch
python3 "$PHONES" start --dir /phones/asterisk
trap 'python3 "$PHONES" stop --dir /phones/freeswitch; python3 "$PHONES" stop --dir /phones/asterisk; exit 0' TERM INT
echo "softphones ready: docker compose exec softphone python3 $PHONES place-calls --dir /phones/freeswitch (or /phones/asterisk)"
while :; do sleep 3600 & wait $!; done
