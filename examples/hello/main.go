// Command hello is the example function `make up` deploys: a Go Lambda
// handler built on aws-lambda-go that greets whoever the event names.
package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Name string `json:"name"`
}

type response struct {
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
}

func handle(ctx context.Context, ev event) (response, error) {
	if ev.Name == "" {
		ev.Name = "world"
	}
	lc, _ := lambdacontext.FromContext(ctx)
	fmt.Printf("greeting %s\n", ev.Name)
	return response{Message: fmt.Sprintf("Hello, %s! (from Kappa)", ev.Name), RequestID: lc.AwsRequestID}, nil
}

func main() { lambda.Start(handle) }
