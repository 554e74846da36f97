#!/bin/bash
# Entrypoint of localhost/wwebstore-redis:7 (scripts/images/redis), behaving like the official
# redis image's docker-entrypoint.sh:
#   - arguments that start with '-', or a first argument ending in .conf, are given to redis-server,
#     so `--cluster-enabled yes --port 7001` or `/usr/local/redis.conf --port 7001` work as CMD;
#   - redis-server runs as the redis user, in /data, logging to stdout ("* Ready to accept
#     connections" is what testcontainers-go's modules/redis waits for);
#   - without a config file it listens on every interface (redis-server's default) with protected
#     mode off, as the official image does (it patches that default into its build); with a config
#     file, the file decides.
# Anything else (bash, redis-cli, …) is run as given.
set -Eeuo pipefail

if [[ ${1:-} == -* || ${1:-} == *.conf ]]; then
	set -- redis-server "$@"
fi
if [[ ${1:-} != redis-server ]]; then
	exec "$@"
fi
shift

if [[ $(id -u) == 0 ]]; then
	chown redis:redis /data
	exec setpriv --reuid=redis --regid=redis --init-groups "${BASH_SOURCE[0]}" redis-server "$@"
fi

if [[ ${1:-} == "" || ${1:-} == -* ]]; then
	# No config file: the defaults of the official image. Later arguments override them.
	set -- --protected-mode no "$@"
fi
if [[ $(umask) == 0022 ]]; then
	umask 0077 # as the official image: the dump and AOF files are private
fi
exec redis-server "$@"
