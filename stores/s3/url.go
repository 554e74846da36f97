package s3store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wwebstore/wwebstore/remoteauth"
)

// Scheme is the URL scheme that s3store registers with remoteauth.RegisterScheme.
const Scheme = "s3"

func init() { remoteauth.RegisterScheme(Scheme, openURL) }

// urlConfig is what an s3:// URL says.
type urlConfig struct {
	bucket    string
	region    string
	endpoint  string
	pathStyle bool
	opts      Options
}

// openURL opens a Store for a URL of the form
//
//	s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000&path_style=true
//	    &part_size=16777216&concurrency=8&sse=aws:kms&kms_key_id=…&storage_class=STANDARD_IA&keep=3
//	    &check=false
//
// Every parameter is optional. The path after the bucket is Options.Prefix; keep is
// Options.Keep (archives kept per session, 1 for no history); check=false sets
// Options.SkipAccessCheck (no request at opening; by default OpenStore fails, as New does, when
// the credentials, the bucket or the endpoint are wrong). Credentials (and the
// region, when the URL has none) come from the standard AWS chain of config.LoadDefaultConfig:
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_PROFILE), shared files,
// SSO, web identity, ECS/EC2 roles.
func openURL(ctx context.Context, u *url.URL) (remoteauth.Store, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	var loadOpts []func(*config.LoadOptions) error
	if cfg.region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: URL %q: loading the AWS configuration: %w", u.Redacted(), err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.endpoint)
		}
		o.UsePathStyle = cfg.pathStyle
	})
	return New(ctx, client, cfg.bucket, &cfg.opts)
}

func parseURL(u *url.URL) (*urlConfig, error) {
	fail := func(format string, args ...any) (*urlConfig, error) {
		return nil, fmt.Errorf("s3store: URL %q: %s", u.Redacted(), fmt.Sprintf(format, args...))
	}
	if u.Scheme != Scheme {
		return fail("the scheme is not %q", Scheme)
	}
	if u.User != nil {
		return fail("credentials in the URL are not supported: they come from the AWS credential chain")
	}
	if u.Host == "" {
		return fail("no bucket: want s3://bucket/prefix")
	}
	if u.Fragment != "" {
		return fail("fragments are not supported")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("query: %v", err)
	}
	cfg := &urlConfig{bucket: u.Host, opts: Options{Prefix: strings.TrimPrefix(u.Path, "/")}}
	for name, vs := range q {
		v := vs[len(vs)-1]
		switch name {
		case "region":
			cfg.region = v
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return fail("endpoint %q is not an http:// or https:// URL", v)
			}
			cfg.endpoint = v
		case "path_style":
			if cfg.pathStyle, err = strconv.ParseBool(v); err != nil {
				return fail("path_style %q is not a boolean", v)
			}
		case "part_size":
			if cfg.opts.PartSize, err = strconv.ParseInt(v, 10, 64); err != nil {
				return fail("part_size %q is not a number of bytes", v)
			}
		case "concurrency":
			if cfg.opts.Concurrency, err = strconv.Atoi(v); err != nil {
				return fail("concurrency %q is not a number", v)
			}
		case "sse":
			cfg.opts.ServerSideEncryption = types.ServerSideEncryption(v)
		case "kms_key_id":
			cfg.opts.SSEKMSKeyID = v
		case "storage_class":
			cfg.opts.StorageClass = types.StorageClass(v)
		case "check":
			check, err := strconv.ParseBool(v)
			if err != nil {
				return fail("check %q is not a boolean (check=false skips New's access check)", v)
			}
			cfg.opts.SkipAccessCheck = !check
		case "keep":
			if cfg.opts.Keep, err = strconv.Atoi(v); err != nil || cfg.opts.Keep < 1 {
				return fail("keep %q is not a number of archives, 1 or more", v)
			}
		default:
			return fail("unknown parameter %q", name)
		}
	}
	if err := cfg.opts.validate(); err != nil {
		return fail("%s", strings.TrimPrefix(err.Error(), "s3store: "))
	}
	return cfg, nil
}
