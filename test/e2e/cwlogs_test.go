package e2e

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// TestCloudWatchLogsAPI reads functions' logs with aws-sdk-go-v2's
// CloudWatch Logs client pointed at Kappa: the log groups of a function
// with the default group and of one with its own LoggingConfig.LogGroup,
// their streams, a stream's events (the function's output and its
// START/END/REPORT lines) and a filtered search across streams.
func TestCloudWatchLogsAPI(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:cwlogs")
	s.createFunction(t, "cw-default", img)
	s.createFunction(t, "cw-custom", img, func(in *lambda.CreateFunctionInput) {
		in.LoggingConfig = &types.LoggingConfig{LogGroup: aws.String("/team/custom")}
	})
	cw := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + s.addr),
		Credentials: credentials.NewStaticCredentialsProvider("kappa", "kappa", ""),
	})
	for i, fn := range []string{"cw-default", "cw-custom", "cw-custom"} {
		invoke(t, s, fn, map[string]any{"op": "echo", "log": "hello from " + fn + " #" + string(rune('1'+i))})
	}

	groups, err := cw.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups.LogGroups {
		names = append(names, aws.ToString(g.LogGroupName))
	}
	if !slices.Contains(names, "/aws/lambda/cw-default") || !slices.Contains(names, "/team/custom") {
		t.Errorf("DescribeLogGroups = %v, want the default and the custom group", names)
	}

	var found *cloudwatchlogs.FilterLogEventsOutput
	if !eventually(10*time.Second, func() bool {
		found, err = cw.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName: aws.String("/team/custom"), FilterPattern: aws.String(`"hello from"`)})
		return err == nil && len(found.Events) == 2
	}) {
		t.Fatalf("FilterLogEvents in /team/custom = %+v, %v; want the function's two lines", found, err)
	}
	for _, e := range found.Events {
		if !strings.HasPrefix(aws.ToString(e.Message), "hello from cw-custom") || aws.ToInt64(e.Timestamp) == 0 {
			t.Errorf("filtered event %q at %d", aws.ToString(e.Message), aws.ToInt64(e.Timestamp))
		}
	}

	streams, err := cw.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{
		LogGroupName: aws.String("/aws/lambda/cw-default"), OrderBy: cwtypes.OrderByLastEventTime, Descending: aws.Bool(true)})
	if err != nil || len(streams.LogStreams) != 1 {
		t.Fatalf("DescribeLogStreams = %+v, %v; want the one environment's stream", streams, err)
	}
	stream := aws.ToString(streams.LogStreams[0].LogStreamName)
	if !strings.Contains(stream, "/[$LATEST]") {
		t.Errorf("stream name %q, want Lambda's YYYY/MM/DD/[$LATEST]<id>", stream)
	}
	out, err := cw.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String("/aws/lambda/cw-default"), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, e := range out.Events {
		text = append(text, aws.ToString(e.Message))
	}
	joined := strings.Join(text, "\n")
	for _, want := range []string{"START RequestId: ", "hello from cw-default #1", "END RequestId: ", "REPORT RequestId: "} {
		if !strings.Contains(joined, want) {
			t.Errorf("GetLogEvents of %s lacks %q:\n%s", stream, want, joined)
		}
	}

	// A deleted function's logs stay readable in its default group.
	if _, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("cw-default")}); err != nil {
		t.Fatal(err)
	}
	after, err := cw.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName: aws.String("/aws/lambda/cw-default"), FilterPattern: aws.String(`"hello from cw-default"`)})
	if err != nil || len(after.Events) != 1 {
		t.Errorf("FilterLogEvents of a deleted function's group = %+v, %v; want its line", after, err)
	}

	_, err = cw.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/no-such-function")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceNotFoundException" {
		t.Errorf("FilterLogEvents of an unknown group: %v, want ResourceNotFoundException", err)
	}
}
