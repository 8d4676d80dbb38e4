#!/bin/sh
# Configure Asterisk from the environment, then run it in the foreground.
#   ARI_PASSWORD_FILE  the ARI password callgate uses (default /run/secrets/ari_password)
#   AMI_PASSWORD_FILE  the AMI password `callgate doctor` uses (default
#                      /run/secrets/ami_password); without it AMI stays off
#   RTP_START, RTP_END the RTP port range, required: compose passes docker/.env's, the
#                      same it publishes
# `callgate-asterisk --configure-only DIR` writes the configuration into DIR and stops:
# the test harness runs it in its own Debian root, so the image cannot drift.
set -eu
etc=/etc/asterisk
if [ "${1:-}" = "--configure-only" ]; then
    etc=$2
fi

if [ -z "${RTP_START:-}" ] || [ -z "${RTP_END:-}" ]; then
    echo "callgate-asterisk: RTP_START and RTP_END are not set (docker/.env)" >&2
    exit 1
fi
printf '[general]\nrtpstart=%s\nrtpend=%s\n' "$RTP_START" "$RTP_END" > "$etc/rtp.conf"

# A value for sed's replacement: its own special characters taken literally.
literal() {
    printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'
}

secret=${ARI_PASSWORD_FILE:-/run/secrets/ari_password}
if [ ! -r "$secret" ]; then
    # Never start on the shipped placeholder password: ARI would be open with it.
    echo "callgate-asterisk: cannot read the ARI password at $secret (is it readable by the asterisk user? chmod 644)" >&2
    exit 1
fi
password=$(tr -d '\r\n' < "$secret")
# Only the [callgate] user's password line; the secret never reaches the logs.
sed -i "s|^password = .*|password = $(literal "$password")|" "$etc/ari.conf"

# AMI serves only `callgate doctor`; never with the shipped placeholder secret.
ami_secret=${AMI_PASSWORD_FILE:-/run/secrets/ami_password}
if [ -r "$ami_secret" ]; then
    ami_password=$(tr -d '\r\n' < "$ami_secret")
    sed -i "s|^secret = .*|secret = $(literal "$ami_password")|; s|^enabled = no|enabled = yes|" \
        "$etc/manager.conf"
fi

if [ "${1:-}" = "--configure-only" ]; then
    exit 0
fi
exec asterisk -f -n -g
