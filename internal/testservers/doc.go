// Package testservers starts, once per test binary, the real servers that wwebstore's tests run
// against (Redis, PostgreSQL, a MongoDB-wire server and an S3 server) and gives each test a
// namespace of its own on them, removed when the test ends. Tests never run against mocks: a
// store is only ever tested against the server it is for.
//
// A test package that uses it runs its tests through [Main] (or [Run]), which removes the
// containers once they have run; a test binary that does not fails at its first call here:
//
//	func TestMain(m *testing.M) { testservers.Main(m) }
//
// and its tests ask for servers:
//
//	srv := testservers.Redis(t) // or Postgres, Mongo, S3; All for the four
//	srv.Setenv(t)               // the environment srv.URL needs (S3's credentials)
//	st, err := remoteauth.OpenStore(t.Context(), srv.URL) // with the store package imported
//
// A child process (the command-line tool) gets srv.URL as an argument and srv.Env in its
// environment instead.
//
// # Where the servers come from
//
// For each engine, on the first call for it in a test binary:
//
//  1. If its WWEBSTORE_<X>_URL is set, the tests use that server of yours, and create their
//     namespaces on it; nothing is started.
//  2. Otherwise, a container is started with testcontainers-go from WWEBSTORE_<X>_IMAGE, or the
//     default image below. The tests of the binary share it; [Main] removes it once they have run.
//     A start that fails is tried once more; if it fails again, every test of the binary that
//     asks for that engine fails at once with that error.
//  3. Without a container engine, the test is unavailable: [testenv.Unavailable] skips it, or
//     fails it when WWEBSTORE_CI=1, with a message that says how to provide the server.
//
// The environment variables, as the store tests have always read them:
//
//	WWEBSTORE_REDIS_URL       redis://[user:password@]host:port/db, one server (go-redis's ParseURL)
//	WWEBSTORE_REDIS_IMAGE     image of the Redis container (default redis:7)
//	WWEBSTORE_POSTGRES_URL    postgres://user:password@host:port/db?sslmode=…, a role that may
//	                          CREATE SCHEMA in that database
//	WWEBSTORE_POSTGRES_IMAGE  image of the PostgreSQL container (default postgres:17)
//	WWEBSTORE_MONGO_URL       mongodb://host:port/ (a database in the path is replaced per test)
//	WWEBSTORE_MONGO_IMAGE     image of the MongoDB-wire container (default mongo:8; a FerretDB
//	                          image is recognised by "ferretdb" in its name)
//	WWEBSTORE_S3_URL          the endpoint of an S3 server, http://host:port
//	WWEBSTORE_S3_ACCESS_KEY   its access key (default minioadmin)
//	WWEBSTORE_S3_SECRET_KEY   its secret key (default minioadmin)
//	WWEBSTORE_S3_BUCKET       an existing bucket, for servers where the keys may not create
//	                          buckets: each test gets a prefix in it instead of a bucket
//	WWEBSTORE_S3_IMAGE        image of the S3 container (default minio/minio; any image that
//	                          behaves as it: "server /data", port 9000, MINIO_ROOT_USER and
//	                          MINIO_ROOT_PASSWORD, /minio/health/live)
//
// On a machine without a Docker engine or a container registry, scripts/test sets up Podman,
// builds local images and sets DOCKER_HOST, TESTCONTAINERS_* and the WWEBSTORE_<X>_IMAGE
// variables (see scripts/images/README.md).
//
// # Namespaces
//
// Every [Server] has a namespace that no other Server has, named with 12 random hexadecimal
// digits (written <id> below):
//
//	redis     the key prefix "wwebstore-test:<id>:" (URL parameter prefix); its keys are deleted
//	postgres  the schema wwebstore_test_<id> (URL parameter schema), created for the Server;
//	          DROP SCHEMA … CASCADE removes it
//	mongo     the database wwebstore_test_<id> (the URL's path); it is dropped
//	s3        the bucket wwebstore-test-<id>, emptied (objects deleted, open multipart uploads
//	          aborted) and removed; with WWEBSTORE_S3_BUCKET, the prefix wwebstore-test/<id> in
//	          that bucket (the URL's path), emptied
//
// The namespace is removed by a cleanup of the test that asked for it ([testing.TB.Cleanup]), so
// after the cleanups that the test registered later, such as closing its stores. Creating and
// removing a namespace may take at most 30 s each; a failure to remove one fails the test.
//
// # Limits
//
// A container must answer within 2 minutes of its start. The check for a container engine
// (testcontainers-go's provider health) is made once per binary and may take 10 s.
//
// The functions are safe for concurrent use, but [Server.Setenv], as [testing.T.Setenv], must not
// be called from parallel tests.
package testservers
