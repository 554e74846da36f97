package postgresstore

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tt := range []struct {
		url, dsn string
		opts     Options
	}{
		{"postgres://u:p@h:5432/db", "postgres://u:p@h:5432/db", Options{}},
		{"postgresql://h/db?sslmode=disable", "postgresql://h/db?sslmode=disable", Options{}},
		{"postgres://h/db?table=Sessions&sslmode=require", "postgres://h/db?sslmode=require", Options{Table: "Sessions"}},
		{"postgres://h/db?schema=ws&table=s&chunk_table=c", "postgres://h/db", Options{Schema: "ws", Table: "s", ChunkTable: "c"}},
		{"postgres://h/db?table=a%22b%20c", "postgres://h/db", Options{Table: `a"b c`}},
		{"postgres://h/db?table=x.y", "postgres://h/db", Options{Table: "x.y"}},
		{"postgres://h/db?chunk_size=4MiB", "postgres://h/db", Options{ChunkSize: 4 << 20}},
		{"postgres://h/db?chunk_size=512KiB", "postgres://h/db", Options{ChunkSize: 512 << 10}},
		{"postgres://h/db?chunk_size=65536", "postgres://h/db", Options{ChunkSize: 65536}},
		{"postgres://h/db?create_tables=false", "postgres://h/db", Options{SkipCreateTables: true}},
		{"postgres://h/db?create_tables=true", "postgres://h/db", Options{}},
		{"postgres://h/db?use_pool_exec_mode=true&default_query_exec_mode=cache_statement", "postgres://h/db?default_query_exec_mode=cache_statement", Options{UsePoolExecMode: true}},
		{"postgres://h/db?pool_max_conns=8&application_name=ws&table=t", "postgres://h/db?application_name=ws&pool_max_conns=8", Options{Table: "t"}},
		{"postgres:///db?host=/run/postgresql&table=t", "postgres:///db?host=%2Frun%2Fpostgresql", Options{Table: "t"}},
		{"postgres://h/db?keep=1", "postgres://h/db", Options{Keep: 1}},
		{"postgres://h/db?keep=5&sslmode=disable", "postgres://h/db?sslmode=disable", Options{Keep: 5}},
		{"postgres://h/db?table=t&version_table=kept", "postgres://h/db", Options{Table: "t", VersionTable: "kept"}},
		{"postgres://h/db?table=t&lease_table=l", "postgres://h/db", Options{Table: "t", LeaseTable: "l"}},
	} {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		dsn, opts, err := parseURL(u)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tt.url, err)
			continue
		}
		if dsn != tt.dsn || !reflect.DeepEqual(*opts, tt.opts) {
			t.Errorf("parseURL(%q) = %q, %+v; want %q, %+v", tt.url, dsn, *opts, tt.dsn, tt.opts)
		}
	}
	for _, bad := range []string{
		"postgres:db",
		"postgres://h/db#frag",
		"postgres://h/db?table=",
		"postgres://h/db?table=a&table=b",
		"postgres://h/db?schema=",
		"postgres://h/db?chunk_size=",
		"postgres://h/db?chunk_size=1GiB",
		"postgres://h/db?chunk_size=65MiB",
		"postgres://h/db?chunk_size=-1",
		"postgres://h/db?chunk_size=1MB",
		"postgres://h/db?create_tables=maybe",
		"postgres://h/db?use_pool_exec_mode=",
		"postgres://h/db?table=%zz",
		"postgres://h/db?keep=0",
		"postgres://h/db?keep=-1",
		"postgres://h/db?keep=",
		"postgres://h/db?keep=two",
		"postgres://h/db?keep=2.5",
		"postgres://h/db?keep=1&keep=2",
		"postgres://h/db?version_table=",
	} {
		u, err := url.Parse(bad)
		if err != nil {
			continue // refused before the store sees it
		}
		if dsn, opts, err := parseURL(u); err == nil {
			t.Errorf("parseURL(%q) = %q, %+v, nil; want an error", bad, dsn, opts)
		} else if !strings.HasPrefix(err.Error(), "postgresstore: ") {
			t.Errorf("parseURL(%q): %q does not begin with postgresstore:", bad, err)
		}
	}
}

func TestQualify(t *testing.T) {
	for _, tt := range []struct{ schema, table, want string }{
		{"", "wwebstore_sessions", `"wwebstore_sessions"`},
		{"", "Sessions", `"Sessions"`},
		{"", `a"b`, `"a""b"`},
		{"", "x.y", `"x.y"`},
		{"ws", "t", `"ws"."t"`},
		{"My Schema", `t"; DROP TABLE x; --`, `"My Schema"."t""; DROP TABLE x; --"`},
	} {
		if got := qualify(tt.schema, tt.table); got != tt.want {
			t.Errorf("qualify(%q, %q) = %s, want %s", tt.schema, tt.table, got, tt.want)
		}
	}
}
