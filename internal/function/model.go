package function

import (
	"fmt"
	"time"
)

// States and reason codes, as Lambda spells them.
const (
	StatePending  = "Pending"
	StateActive   = "Active"
	StateInactive = "Inactive"
	StateFailed   = "Failed"

	UpdateInProgress = "InProgress"
	UpdateSuccessful = "Successful"
	UpdateFailed     = "Failed"

	ReasonCreating          = "Creating"
	ReasonIdle              = "Idle"
	ReasonInvalidImage      = "InvalidImage"
	ReasonImageDeleted      = "ImageDeleted"
	ReasonImageAccessDenied = "ImageAccessDenied"
	ReasonInternalError     = "InternalError"

	LatestVersion = "$LATEST"

	// SnapStartPublished is SnapStart.ApplyOn PublishedVersions.
	SnapStartPublished  = "PublishedVersions"
	ReasonFunctionError = "FunctionError"
)

// SnapStartOn reports whether c is a published version started from a
// snapshot (SnapStart's OptimizationStatus On): its snapshot was taken.
func (c Config) SnapStartOn() bool {
	return c.SnapStart == SnapStartPublished && c.Version != LatestVersion && c.State == StateActive
}

// ImageConfig overrides the image's ENTRYPOINT, CMD and WORKDIR.
type ImageConfig struct {
	EntryPoint       []string `json:"EntryPoint,omitempty"`
	Command          []string `json:"Command,omitempty"`
	WorkingDirectory string   `json:"WorkingDirectory,omitempty"`
}

// LoggingConfig is Lambda's LoggingConfig.
type LoggingConfig struct {
	LogFormat           string `json:"LogFormat,omitempty"`
	ApplicationLogLevel string `json:"ApplicationLogLevel,omitempty"`
	SystemLogLevel      string `json:"SystemLogLevel,omitempty"`
	LogGroup            string `json:"LogGroup,omitempty"`
}

// Code is a function's deployed image.
type Code struct {
	ImageURI         string `json:"imageUri"`
	ResolvedImageURI string `json:"resolvedImageUri,omitempty"`
	// Digest is the manifest digest ("sha256:…").
	Digest string `json:"digest,omitempty"`
	// Image config captured at deploy time (ENTRYPOINT, CMD, ENV, WORKDIR).
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
}

// CodeSha256 is the hex of the manifest digest, as Lambda reports it.
func (c Code) CodeSha256() string {
	if len(c.Digest) > 7 && c.Digest[:7] == "sha256:" {
		return c.Digest[7:]
	}
	return c.Digest
}

// Config is one version's configuration ($LATEST or published).
type Config struct {
	Name             string            `json:"name"`
	Version          string            `json:"version"`
	Description      string            `json:"description,omitempty"`
	Role             string            `json:"role"`
	MemorySize       int               `json:"memorySize"`
	Timeout          int               `json:"timeout"`
	EphemeralStorage int               `json:"ephemeralStorage"`
	Environment      map[string]string `json:"environment,omitempty"`
	ImageConfig      ImageConfig       `json:"imageConfig"`
	Architectures    []string          `json:"architectures"`
	LoggingConfig    LoggingConfig     `json:"loggingConfig"`
	TracingMode      string            `json:"tracingMode"`
	// DeadLetterTarget is DeadLetterConfig.TargetArn: where asynchronous
	// events that failed for good go when no OnFailure destination is set.
	DeadLetterTarget string `json:"deadLetterTarget,omitempty"`
	// SnapStart is SnapStart.ApplyOn when PublishedVersions, else "":
	// published versions then start from a snapshot taken after init.
	SnapStart string `json:"snapStart,omitempty"`
	Code      Code   `json:"code"`

	State                      string    `json:"state"`
	StateReason                string    `json:"stateReason,omitempty"`
	StateReasonCode            string    `json:"stateReasonCode,omitempty"`
	LastUpdateStatus           string    `json:"lastUpdateStatus,omitempty"`
	LastUpdateStatusReason     string    `json:"lastUpdateStatusReason,omitempty"`
	LastUpdateStatusReasonCode string    `json:"lastUpdateStatusReasonCode,omitempty"`
	RevisionID                 string    `json:"revisionId"`
	LastModified               time.Time `json:"lastModified"`
}

// Function is the stored record of one function.
type Function struct {
	Latest Config            `json:"latest"`
	Tags   map[string]string `json:"tags,omitempty"`
	// Pending is the code an UpdateFunctionCode is deploying; the old Code
	// keeps serving until it is Active.
	Pending *Code `json:"pending,omitempty"`
	// Generation increases on every mutation.
	Generation uint64 `json:"generation"`
	// LastVersion is the number of the newest published version (0: none).
	LastVersion int `json:"lastVersion,omitempty"`
	// ReservedConcurrency is PutFunctionConcurrency's value; nil when unset.
	ReservedConcurrency *int `json:"reservedConcurrency,omitempty"`
	// PublishPending asks the deploy in progress to publish a version when
	// it succeeds (Publish: true on create or UpdateFunctionCode).
	PublishPending bool `json:"publishPending,omitempty"`
	// Policies are the resource-based policies AddPermission builds, by
	// qualifier ("" for the function itself, a version or an alias); they
	// go when the function does.
	Policies map[string]Policy `json:"policies,omitempty"`
	// RecursiveLoop is PutFunctionRecursionConfig's value ("" is the
	// default, Terminate); see recursion.go.
	RecursiveLoop string `json:"recursiveLoop,omitempty"`
}

// Alias is a named pointer to a published version, optionally splitting
// traffic with a second version.
type Alias struct {
	Name              string             `json:"name"`
	FunctionName      string             `json:"functionName"`
	FunctionVersion   string             `json:"functionVersion"`
	Description       string             `json:"description,omitempty"`
	AdditionalWeights map[string]float64 `json:"additionalWeights,omitempty"`
	RevisionID        string             `json:"revisionId"`
}

// ARN builds a function ARN, qualified when qualifier is not empty.
func ARN(region, account, name, qualifier string) string {
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, account, name)
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

// Arch maps a Lambda architecture to the OCI one.
func Arch(lambdaArch string) string {
	if lambdaArch == "arm64" {
		return "arm64"
	}
	return "amd64"
}
