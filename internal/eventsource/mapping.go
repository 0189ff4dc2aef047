package eventsource

import (
	"fmt"
	"regexp"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
)

// States of a mapping, as Lambda names them.
const (
	StateCreating  = "Creating"
	StateEnabling  = "Enabling"
	StateEnabled   = "Enabled"
	StateDisabling = "Disabling"
	StateDisabled  = "Disabled"
	StateUpdating  = "Updating"
	StateDeleting  = "Deleting"
)

// ReportBatchItemFailures is the one FunctionResponseTypes value.
const ReportBatchItemFailures = "ReportBatchItemFailures"

// Limits of an SQS mapping, as in Lambda.
const (
	DefaultBatchSize = 10
	MaxBatchSize     = 10000
	MaxWindow        = 300 // seconds
	// MinConcurrency and MaxConcurrency bound ScalingConfig.MaximumConcurrency.
	MinConcurrency = 2
	MaxConcurrency = 1000
	// maxBatchNoWindow is the largest BatchSize without a batching window.
	maxBatchNoWindow = 10
)

// Mapping is an event source mapping as stored.
type Mapping struct {
	UUID string `json:"uuid"`
	// Function and Qualifier name what is invoked ("" qualifier:
	// $LATEST, unqualified).
	Function  string `json:"function"`
	Qualifier string `json:"qualifier,omitempty"`
	// Queue is the Kappa queue read.
	Queue          string `json:"queue"`
	BatchSize      int    `json:"batchSize"`
	Window         int    `json:"window"` // MaximumBatchingWindowInSeconds
	Enabled        bool   `json:"enabled"`
	ReportFailures bool   `json:"reportFailures"`
	// MaxConcurrency is ScalingConfig.MaximumConcurrency: how many batches
	// may run at once (0: unset, one at a time).
	MaxConcurrency int       `json:"maxConcurrency,omitempty"`
	State          string    `json:"state"`
	LastModified   time.Time `json:"lastModified"`
	LastResult     string    `json:"lastResult"`
	// Tags are the mapping's own (ListTags on its ARN), as in Lambda.
	Tags map[string]string `json:"tags,omitempty"`
}

// Input is what CreateEventSourceMapping and UpdateEventSourceMapping set;
// nil members are left as they are (defaults on create).
type Input struct {
	// Function is a name, partial ARN or ARN, qualified or not.
	Function *string
	// EventSourceArn is create-only.
	EventSourceArn        string
	Enabled               *bool
	BatchSize             *int
	Window                *int
	FunctionResponseTypes *[]string
	// MaxConcurrency is ScalingConfig.MaximumConcurrency (0 clears it).
	MaxConcurrency *int
	// Tags are CreateEventSourceMapping's (checked by the caller);
	// Update leaves them to TagResource and UntagResource.
	Tags map[string]string
	// Unsupported are members of other event source kinds that were set
	// (StartingPosition, FilterCriteria, …): refused.
	Unsupported []string
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// validUUID reports whether id has the shape of a mapping's UUID (and can
// be a store key).
func validUUID(id string) bool { return uuidRE.MatchString(id) }

// check validates in against the mapping m it would produce.
func (in *Input) check(m *Mapping) error {
	if len(in.Unsupported) > 0 {
		return apierr.New(apierr.InvalidParameter,
			"Kappa's event sources are its queues (SQS-like); %s does not apply to them", in.Unsupported[0])
	}
	if in.BatchSize != nil && (*in.BatchSize < 1 || *in.BatchSize > MaxBatchSize) {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%d' at 'batchSize' failed to satisfy constraint: Member must have value between 1 and %d", *in.BatchSize, MaxBatchSize)
	}
	if in.Window != nil && (*in.Window < 0 || *in.Window > MaxWindow) {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%d' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint: Member must have value between 0 and %d", *in.Window, MaxWindow)
	}
	if in.FunctionResponseTypes != nil {
		for _, t := range *in.FunctionResponseTypes {
			if t != ReportBatchItemFailures {
				return apierr.New(apierr.Validation,
					"1 validation error detected: Value '[%s]' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy enum value set: [ReportBatchItemFailures]", t)
			}
		}
	}
	if in.MaxConcurrency != nil && *in.MaxConcurrency != 0 && (*in.MaxConcurrency < MinConcurrency || *in.MaxConcurrency > MaxConcurrency) {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%d' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have value between %d and %d", *in.MaxConcurrency, MinConcurrency, MaxConcurrency)
	}
	if m.BatchSize > maxBatchNoWindow && m.Window < 1 {
		return apierr.New(apierr.InvalidParameter,
			"Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than %d", maxBatchNoWindow)
	}
	return nil
}

// apply sets what in holds on m (not Function and EventSourceArn, which
// the service resolves).
func (in *Input) apply(m *Mapping) {
	if in.Enabled != nil {
		m.Enabled = *in.Enabled
	}
	if in.BatchSize != nil {
		m.BatchSize = *in.BatchSize
	}
	if in.Window != nil {
		m.Window = *in.Window
	}
	if in.FunctionResponseTypes != nil {
		m.ReportFailures = len(*in.FunctionResponseTypes) > 0
	}
	if in.MaxConcurrency != nil {
		m.MaxConcurrency = *in.MaxConcurrency
	}
}

// workers is how many batches the mapping runs at once.
func (m *Mapping) workers() int { return max(1, m.MaxConcurrency) }

// restingState is the state a mapping settles in.
func (m *Mapping) restingState() string {
	if m.Enabled {
		return StateEnabled
	}
	return StateDisabled
}

// ARN is the mapping's EventSourceMappingArn.
func ARN(region, account, id string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:event-source-mapping:%s", region, account, id)
}
