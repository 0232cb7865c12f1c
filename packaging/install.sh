#!/bin/sh
# Installs TD Analytics from this tarball on a Linux host without the Debian packages: binaries
# to /usr/local/bin, units to /etc/systemd/system (when systemd runs), configs to /etc/tda (kept
# when already there), the tda user, state under /var/lib. Run as root from the unpacked
# directory: ./install.sh [collector] [agent]   (both when none is named)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
what=${*:-collector agent}
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
getent passwd tda >/dev/null || useradd --system --home-dir /var/lib/tda --no-create-home --shell /usr/sbin/nologin --user-group tda
install -d -o root -g tda -m 0750 /etc/tda /etc/tda/profiles
token() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
for part in $what; do
  case $part in
    collector)
      install -m 0755 "$here/bin/tda-collector" "$here/bin/tda" /usr/local/bin/
      install -d -o tda -g tda -m 0750 /var/lib/tda
      [ -e /etc/tda/collector.toml ] || install -o root -g tda -m 0640 "$here/etc/collector.toml" /etc/tda/
      for p in "$here"/etc/profiles/*.toml; do
        [ -e "/etc/tda/profiles/$(basename "$p")" ] || install -o root -g tda -m 0640 "$p" /etc/tda/profiles/
      done
      for f in ingest-tokens admin-tokens read-tokens; do
        [ -e /etc/tda/$f ] || { printf '%s\n' "$(token)" > /etc/tda/$f; chown root:tda /etc/tda/$f; chmod 0640 /etc/tda/$f; }
      done
      unit=tda-collector.service ;;
    agent)
      install -m 0755 "$here/bin/tda-agent" /usr/local/bin/
      install -d -o tda -g tda -m 0750 /var/lib/tda-agent /var/lib/tda-agent/spool
      [ -e /etc/tda/agent.toml ] || install -o root -g tda -m 0640 "$here/etc/agent.toml" /etc/tda/
      if [ ! -e /etc/tda/agent-token ]; then
        grep -v '^#' /etc/tda/ingest-tokens 2>/dev/null | head -n1 > /etc/tda/agent-token || true
        chown root:tda /etc/tda/agent-token; chmod 0640 /etc/tda/agent-token
      fi
      unit=tda-agent.service ;;
    *) echo "install.sh: unknown part '$part' (collector, agent)" >&2; exit 1 ;;
  esac
  if [ -d /run/systemd/system ]; then
    sed 's|/usr/bin/|/usr/local/bin/|g' "$here/systemd/$unit" > /etc/systemd/system/$unit
    systemctl daemon-reload
    echo "installed $unit: systemctl enable --now $unit"
  else
    echo "installed $part without systemd: run /usr/local/bin/tda-$part run --daemon --pid-file /run/tda-$part.pid --user tda"
  fi
done
