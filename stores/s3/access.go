package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// AccessCheckTimeout bounds the access check of New (credentials and one ListObjectsV2, with
// the client's retries), so that an endpoint that never answers fails New instead of hanging it.
const AccessCheckTimeout = 30 * time.Second

// ErrAccessCheck is wrapped by the error of New when its access check fails: the credentials
// cannot be found or are refused, the policy does not allow listing the store's prefix, the
// bucket does not exist or is in another region, or the endpoint cannot be reached. The error
// names the bucket and the endpoint, says what to fix, and wraps the SDK's error (errors.As
// finds its smithy.APIError, with S3's code). Options.SkipAccessCheck skips the check.
var ErrAccessCheck = errors.New("s3store: access check failed")

// errCheckTimeout is the cause of the end of an access check that took AccessCheckTimeout.
var errCheckTimeout = fmt.Errorf("no answer within %v (AccessCheckTimeout)", AccessCheckTimeout)

// Error codes of S3 (and compatible servers) that refuse the credentials themselves, whatever
// the policy says.
var refusedCredentials = []string{
	"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
}

// Error codes of a request signed for another region than the bucket's.
var wrongRegion = []string{"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}

// checkAccess is New's access check: it retrieves the client's credentials, then lists at most
// one key under the store's prefix (ListObjectsV2, what List does: the README's least-privilege
// policy allows it), within AccessCheckTimeout. An empty bucket or prefix is no error.
func (s *Store) checkAccess(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, AccessCheckTimeout, errCheckTimeout)
	defer cancel()
	opts := s.client.Options()
	source := ""
	if opts.Credentials != nil {
		creds, err := opts.Credentials.Retrieve(ctx)
		if err != nil {
			return s.accessError(ctx, opts, "", fmt.Errorf("retrieving the credentials: %w", err))
		}
		source = creds.Source
	}
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  &s.bucket,
		Prefix:  aws.String(s.listPrefix()),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return s.accessError(ctx, opts, source, fmt.Errorf("ListObjectsV2: %w", err))
	}
	return nil
}

// accessError returns the error of a failed access check: err, with where and what to fix.
// source is where the credentials came from (aws.Credentials.Source), when they were found.
func (s *Store) accessError(ctx context.Context, opts s3.Options, source string, err error) error {
	endpoint := aws.ToString(opts.BaseEndpoint)
	if endpoint == "" {
		endpoint = fmt.Sprintf("Amazon S3 in region %q", opts.Region)
	}
	creds := "the credentials"
	if source != "" {
		creds += " from " + source
	}
	fixCreds := "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS_PROFILE, SSO session or role that gives the credentials)"
	fixPolicy := fmt.Sprintf("and that their policy grants s3:ListBucket on arn:aws:s3:::%s for the prefix %q (see the README, Permissions; for a policy without s3:ListBucket, set Options.SkipAccessCheck or the URL parameter check=false)",
		s.bucket, s.listPrefix()+"*")

	var advice string
	var api smithy.APIError
	var re *awshttp.ResponseError
	var send *smithyhttp.RequestSendError
	var ne net.Error
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case context.Cause(ctx) == errCheckTimeout:
		advice = fmt.Sprintf("%v: check the endpoint (s3.Options.BaseEndpoint, the URL parameter endpoint=) and the network", errCheckTimeout)
	case ctx.Err() != nil:
		advice = "the context ended before the check did"
	case code == "NoSuchBucket":
		advice = "the bucket does not exist: create it, or fix the bucket name (the store never creates buckets)"
	case slices.Contains(refusedCredentials, code):
		advice = fmt.Sprintf("the server refused %s (%s): %s", creds, code, fixCreds)
	case slices.Contains(wrongRegion, code) || status == http.StatusMovedPermanently:
		advice = fmt.Sprintf("the bucket is not in region %q: set its region (AWS_REGION, the shared config, or the URL parameter region=)", opts.Region)
	case code == "AccessDenied" || status == http.StatusForbidden:
		advice = fmt.Sprintf("access denied for %s: %s, %s", creds, fixCreds, fixPolicy)
	case status != 0:
		advice = fmt.Sprintf("the server refused the request (HTTP %d %s)", status, code)
	case errors.As(err, &send) || errors.As(err, &ne):
		advice = "the endpoint cannot be reached: check the endpoint (s3.Options.BaseEndpoint, the URL parameter endpoint=), the region and the network"
	default:
		advice = fmt.Sprintf("the request could not be made; if no credentials were found, %s", fixCreds)
	}
	return fmt.Errorf("%w: bucket %q at %s: %s: %w", ErrAccessCheck, s.bucket, endpoint, advice, err)
}

// listPrefix is the prefix of the keys of the store's sessions: the key of a session less the
// session's name and extension ("sessions/", or "" without a prefix).
func (s *Store) listPrefix() string { return strings.TrimSuffix(s.Key("x"), "x.zip") }
