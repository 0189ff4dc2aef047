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
// BUFFERED answers once the function returned. RESPONSE_STREAM sends the
// function's bytes as it produces them (serveStream): a response of type
// application/vnd.awslambda.http-integration-response starts with a JSON
// prelude {statusCode, headers, cookies} and eight NUL bytes; other
// streams are sent with status 200 and their own content type.
package funcurl
