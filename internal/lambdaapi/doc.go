// Package lambdaapi serves the Lambda control plane and Invoke API over
// restJson1, as the aws CLI, the AWS SDKs and Terraform expect: request
// parsing and validation, wire shapes, and the one place where apierr kinds
// become AWS errors (status, X-Amzn-ErrorType, JSON body).
package lambdaapi
