# A demo device's configuration (sourced by demo.sh and fleet.sh, not run): its agent.toml and
# the component openssl, whose files are at DIR/opt/openssl.
#   device_config DIR REPOSITORY_URL SERVER_URL WATCH HEALTH_CHECK
# REPOSITORY_URL and SERVER_URL are TOML values (a quoted URL or an array of them), WATCH
# true or false, HEALTH_CHECK a TOML array (the command). $BASE is the base version.
device_config() {
  local d=$1
  cat > "$d/etc/agent.toml" <<CONF
repository_url = $2
server_url = $3
interval_seconds = ${DEVICE_INTERVAL:-30}
jitter_seconds = 5
max_backoff_seconds = ${DEVICE_MAX_BACKOFF:-10}
watch = $4
watch_timeout_seconds = 60
control_socket = "$d/control.sock"
CONF
  cat > "$d/etc/components/openssl.toml" <<CONF
name = "openssl"
platform = "linux-x86_64"
root = "$d/opt/openssl"
[base_version]
literal = "$BASE"
[health_check]
command = $5
timeout_seconds = 20
CONF
}
