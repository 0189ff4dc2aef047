// Package funcurl owns function URLs: their configurations (AuthType,
// Cors, InvokeMode) and the HTTP front that turns a request into Lambda's
// HTTP payload v2.0 event, invokes the function, and maps its result back
// to an HTTP response.
//
// # Addressing
//
// A URL is served on Kappa's own port, found by the Host header
// <url-id>.lambda-url.<anything> (FunctionUrl is
// http://<url-id>.lambda-url.<region>.localhost:<port>/, which resolves to
// loopback in most clients) or by the path prefix /lambda-url/<url-id>/…
// for clients that cannot set a host name; the prefix is not part of the
// event's rawPath.
//
// # Authentication
//
// AuthType NONE lets every request through (requestContext.accountId is
// "anonymous", as Lambda sends). AWS_IAM requires a Signature Version 4
// signature (Authorization header or presigned query) for service
// "lambda" and the server's region, made with one of the configured
// access keys; requestContext.authorizer.iam names the key.
//
// # Invoke modes
//
// BUFFERED is implemented. RESPONSE_STREAM is accepted and stored, and
// answered as BUFFERED for now: the seam is Handler.invoke, which will
// hand the response body over as it streams once the runtime API delivers
// streamed responses to the invoker.
package funcurl
