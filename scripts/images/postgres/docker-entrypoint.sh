#!/bin/bash
# Entrypoint of localhost/wwebstore-postgres:15 (scripts/images/postgres), behaving like the official
# postgres image's docker-entrypoint.sh for everything testcontainers-go's modules/postgres relies on:
#   - arguments that start with '-' are given to postgres (`postgres -c fsync=off` is the module's CMD);
#   - on a first start (empty $PGDATA) it runs initdb with POSTGRES_USER (default postgres) as the
#     superuser and POSTGRES_PASSWORD as its password, starts a temporary server on the Unix socket
#     only, creates POSTGRES_DB (default: the user name), runs /docker-entrypoint-initdb.d/*.sh,
#     *.sql and *.sql.gz, and stops that server: "database system is ready to accept connections" is
#     logged twice, which is what postgres.BasicWaitStrategies() waits for;
#   - then postgres runs as the postgres user, listening on every interface on 5432, and clients
#     from other hosts authenticate with POSTGRES_HOST_AUTH_METHOD (default scram-sha-256: the
#     password), or trust when that is "trust"; POSTGRES_PASSWORD must be set unless it is "trust";
#   - POSTGRES_INITDB_ARGS are passed to initdb.
# Anything else (bash, psql, …) is run as given.
set -Eeuo pipefail
export PGDATA=${PGDATA:-/var/lib/postgresql/data}
# This script is PID 1 until it execs postgres, and PID 1 ignores the signals it has no handler for:
# without this trap, a container stopped while it initialises would take the whole stop timeout.
trap 'pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1; exit 1' INT TERM

if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi
if [[ ${1:-} != postgres ]]; then
	exec "$@"
fi

if [[ $(id -u) == 0 ]]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	chmod 3777 /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi
shift # "postgres": from here on "$@" are the server's options

export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-}
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

init_database() {
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		echo 'docker-entrypoint.sh: POSTGRES_PASSWORD is empty: set it, or set POSTGRES_HOST_AUTH_METHOD=trust' >&2
		exit 1
	fi
	# POSTGRES_INITDB_ARGS is a list of words, as in the official image.
	local initdb=(initdb -D "$PGDATA" --username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8) initdb_args
	read -ra initdb_args <<<"${POSTGRES_INITDB_ARGS:-}"
	initdb+=("${initdb_args[@]}")
	if [[ -n $POSTGRES_PASSWORD ]]; then
		"${initdb[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
	else
		"${initdb[@]}"
	fi
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

	# A temporary server, reachable on the Unix socket only, for the database and the init scripts.
	pg_ctl -D "$PGDATA" -w start -o "$(printf '%q ' "$@" -c listen_addresses= -p 5432)"
	local psql=(psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --no-password --no-psqlrc)
	if [[ $POSTGRES_DB != postgres ]]; then
		"${psql[@]}" --dbname=postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			SELECT 'CREATE DATABASE ' || quote_ident(:'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
		EOSQL
	fi
	local f
	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh)
			echo "docker-entrypoint.sh: running $f"
			if [[ -x $f ]]; then
				"$f"
			else
				# shellcheck disable=SC1090 # the init scripts are the caller's
				. "$f"
			fi
			;;
		*.sql)
			echo "docker-entrypoint.sh: running $f"
			"${psql[@]}" --dbname="$POSTGRES_DB" -f "$f"
			;;
		*.sql.gz)
			echo "docker-entrypoint.sh: running $f"
			gunzip -c "$f" | "${psql[@]}" --dbname="$POSTGRES_DB"
			;;
		*) echo "docker-entrypoint.sh: ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo 'docker-entrypoint.sh: PostgreSQL init process complete; ready for start up.'
}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	init_database "$@"
fi
exec postgres "$@"
