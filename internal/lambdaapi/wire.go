package lambdaapi

import (
	"encoding/json"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/function"
)

// Wire shapes of the Lambda API (restJson1, PascalCase members).

type wireImageConfig struct {
	EntryPoint       []string `json:"EntryPoint,omitempty"`
	Command          []string `json:"Command,omitempty"`
	WorkingDirectory string   `json:"WorkingDirectory,omitempty"`
}

type wireEnvironment struct {
	Variables map[string]string `json:"Variables"`
}

type wireLoggingConfig struct {
	LogFormat           string `json:"LogFormat,omitempty"`
	ApplicationLogLevel string `json:"ApplicationLogLevel,omitempty"`
	SystemLogLevel      string `json:"SystemLogLevel,omitempty"`
	LogGroup            string `json:"LogGroup,omitempty"`
}

type wireEphemeral struct {
	Size *int `json:"Size"`
}

type wireTracing struct {
	Mode string `json:"Mode,omitempty"`
}

type wireDeadLetter struct {
	TargetArn *string `json:"TargetArn"`
}

// createFunctionRequest is CreateFunction's body. Unknown members are
// ignored, as Lambda does.
type createFunctionRequest struct {
	FunctionName string `json:"FunctionName"`
	Role         string `json:"Role"`
	PackageType  string `json:"PackageType"`
	Code         *struct {
		ImageUri        string `json:"ImageUri"`
		ZipFile         []byte `json:"ZipFile"`
		S3Bucket        string `json:"S3Bucket"`
		S3Key           string `json:"S3Key"`
		S3ObjectVersion string `json:"S3ObjectVersion"`
	} `json:"Code"`
	Runtime          string             `json:"Runtime"`
	Handler          string             `json:"Handler"`
	Layers           []string           `json:"Layers"`
	Description      *string            `json:"Description"`
	MemorySize       *int               `json:"MemorySize"`
	Timeout          *int               `json:"Timeout"`
	EphemeralStorage *wireEphemeral     `json:"EphemeralStorage"`
	Environment      *wireEnvironment   `json:"Environment"`
	ImageConfig      *wireImageConfig   `json:"ImageConfig"`
	Architectures    []string           `json:"Architectures"`
	Tags             map[string]string  `json:"Tags"`
	LoggingConfig    *wireLoggingConfig `json:"LoggingConfig"`
	TracingConfig    *wireTracing       `json:"TracingConfig"`
	SnapStart        *struct {
		ApplyOn string `json:"ApplyOn"`
	} `json:"SnapStart"`
	DeadLetterConfig *wireDeadLetter `json:"DeadLetterConfig"`
	Publish          bool            `json:"Publish"`
	unsupportedMembers
}

// unsupportedMembers are CreateFunction and UpdateFunctionConfiguration
// members Kappa has nothing to do with. Left out, or empty, they are
// fine; set, they are refused (check) rather than stored and ignored, so
// that nobody believes a function reaches a VPC, mounts EFS or has its
// variables encrypted with a KMS key when it does not.
type unsupportedMembers struct {
	VpcConfig *struct {
		SubnetIds        []string `json:"SubnetIds"`
		SecurityGroupIds []string `json:"SecurityGroupIds"`
	} `json:"VpcConfig"`
	KMSKeyArn         *string           `json:"KMSKeyArn"`
	FileSystemConfigs []json.RawMessage `json:"FileSystemConfigs"`
}

func (u *unsupportedMembers) check() error {
	refuse := func(member, why string) error {
		return apierr.New(apierr.InvalidParameter, "Kappa does not support %s: %s", member, why)
	}
	switch {
	case u.VpcConfig != nil && len(u.VpcConfig.SubnetIds)+len(u.VpcConfig.SecurityGroupIds) > 0:
		return refuse("VpcConfig", "an environment's network namespace has loopback only; leave VpcConfig out or empty")
	case u.KMSKeyArn != nil && *u.KMSKeyArn != "":
		return refuse("KMSKeyArn", "there is no KMS; environment variables are stored in the server's data directory")
	case len(u.FileSystemConfigs) > 0:
		return refuse("FileSystemConfigs", "there is no EFS to mount")
	}
	return nil
}

type updateConfigRequest struct {
	Role             *string            `json:"Role"`
	Runtime          string             `json:"Runtime"`
	Handler          string             `json:"Handler"`
	Layers           []string           `json:"Layers"`
	Description      *string            `json:"Description"`
	MemorySize       *int               `json:"MemorySize"`
	Timeout          *int               `json:"Timeout"`
	EphemeralStorage *wireEphemeral     `json:"EphemeralStorage"`
	Environment      *wireEnvironment   `json:"Environment"`
	ImageConfig      *wireImageConfig   `json:"ImageConfig"`
	LoggingConfig    *wireLoggingConfig `json:"LoggingConfig"`
	TracingConfig    *wireTracing       `json:"TracingConfig"`
	SnapStart        *struct {
		ApplyOn string `json:"ApplyOn"`
	} `json:"SnapStart"`
	DeadLetterConfig *wireDeadLetter `json:"DeadLetterConfig"`
	RevisionId       string          `json:"RevisionId"`
	unsupportedMembers
}

type updateCodeRequest struct {
	ImageUri      string   `json:"ImageUri"`
	ZipFile       []byte   `json:"ZipFile"`
	S3Bucket      string   `json:"S3Bucket"`
	Architectures []string `json:"Architectures"`
	Publish       bool     `json:"Publish"`
	DryRun        bool     `json:"DryRun"`
	RevisionId    string   `json:"RevisionId"`
}

type functionConfiguration struct {
	FunctionName               string             `json:"FunctionName"`
	FunctionArn                string             `json:"FunctionArn"`
	Role                       string             `json:"Role"`
	CodeSize                   int64              `json:"CodeSize"`
	Description                string             `json:"Description"`
	Timeout                    int                `json:"Timeout"`
	MemorySize                 int                `json:"MemorySize"`
	LastModified               string             `json:"LastModified"`
	CodeSha256                 string             `json:"CodeSha256"`
	Version                    string             `json:"Version"`
	Environment                *wireEnvironment   `json:"Environment,omitempty"`
	TracingConfig              wireTracing        `json:"TracingConfig"`
	DeadLetterConfig           *wireDeadLetter    `json:"DeadLetterConfig,omitempty"`
	RevisionId                 string             `json:"RevisionId"`
	State                      string             `json:"State"`
	StateReason                string             `json:"StateReason,omitempty"`
	StateReasonCode            string             `json:"StateReasonCode,omitempty"`
	LastUpdateStatus           string             `json:"LastUpdateStatus,omitempty"`
	LastUpdateStatusReason     string             `json:"LastUpdateStatusReason,omitempty"`
	LastUpdateStatusReasonCode string             `json:"LastUpdateStatusReasonCode,omitempty"`
	PackageType                string             `json:"PackageType"`
	ImageConfigResponse        *imageConfigResp   `json:"ImageConfigResponse,omitempty"`
	Architectures              []string           `json:"Architectures"`
	EphemeralStorage           struct{ Size int } `json:"EphemeralStorage"`
	LoggingConfig              wireLoggingConfig  `json:"LoggingConfig"`
	SnapStart                  snapStart          `json:"SnapStart"`
}

type imageConfigResp struct {
	ImageConfig wireImageConfig `json:"ImageConfig"`
}

type snapStart struct {
	ApplyOn            string `json:"ApplyOn"`
	OptimizationStatus string `json:"OptimizationStatus"`
}

type getFunctionResponse struct {
	Configuration functionConfiguration `json:"Configuration"`
	Code          struct {
		RepositoryType   string `json:"RepositoryType"`
		ImageUri         string `json:"ImageUri"`
		ResolvedImageUri string `json:"ResolvedImageUri,omitempty"`
	} `json:"Code"`
	Tags        map[string]string `json:"Tags,omitempty"`
	Concurrency *struct {
		ReservedConcurrentExecutions int `json:"ReservedConcurrentExecutions"`
	} `json:"Concurrency,omitempty"`
}

type listFunctionsResponse struct {
	Functions  []functionConfiguration `json:"Functions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

type listVersionsResponse struct {
	Versions   []functionConfiguration `json:"Versions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

// lambdaTime formats a time as Lambda's LastModified.
const lambdaTime = "2006-01-02T15:04:05.000-0700"

func (a *API) toWire(c function.Config) functionConfiguration {
	w := functionConfiguration{
		FunctionName:               c.Name,
		FunctionArn:                a.fns.ARN(c.Name, ""),
		Role:                       c.Role,
		Description:                c.Description,
		Timeout:                    c.Timeout,
		MemorySize:                 c.MemorySize,
		LastModified:               c.LastModified.UTC().Format(lambdaTime),
		CodeSha256:                 c.Code.CodeSha256(),
		Version:                    c.Version,
		TracingConfig:              wireTracing{Mode: c.TracingMode},
		RevisionId:                 c.RevisionID,
		State:                      c.State,
		StateReason:                c.StateReason,
		StateReasonCode:            c.StateReasonCode,
		LastUpdateStatus:           c.LastUpdateStatus,
		LastUpdateStatusReason:     c.LastUpdateStatusReason,
		LastUpdateStatusReasonCode: c.LastUpdateStatusReasonCode,
		PackageType:                "Image",
		Architectures:              c.Architectures,
		LoggingConfig:              wireLoggingConfig(c.LoggingConfig),
		SnapStart:                  snapStart{ApplyOn: "None", OptimizationStatus: "Off"},
	}
	if c.SnapStart == function.SnapStartPublished {
		w.SnapStart.ApplyOn = c.SnapStart
		if c.SnapStartOn() {
			w.SnapStart.OptimizationStatus = "On"
		}
	}
	if c.Version != function.LatestVersion {
		w.FunctionArn = a.fns.ARN(c.Name, c.Version)
	}
	w.EphemeralStorage.Size = c.EphemeralStorage
	if c.DeadLetterTarget != "" {
		arn := c.DeadLetterTarget
		w.DeadLetterConfig = &wireDeadLetter{TargetArn: &arn}
	}
	if len(c.Environment) > 0 {
		w.Environment = &wireEnvironment{Variables: c.Environment}
	}
	ic := c.ImageConfig
	if len(ic.EntryPoint) > 0 || len(ic.Command) > 0 || ic.WorkingDirectory != "" {
		w.ImageConfigResponse = &imageConfigResp{ImageConfig: wireImageConfig(ic)}
	}
	return w
}
