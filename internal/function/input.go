package function

import (
	"maps"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/kappa-run/kappa/internal/apierr"
)

// CreateInput is a CreateFunction request. Nil pointers mean "not given".
type CreateInput struct {
	FunctionName     string
	Role             string
	PackageType      string
	ImageURI         string
	Runtime          string
	Handler          string
	Layers           []string
	HasZipFile       bool
	Description      *string
	MemorySize       *int
	Timeout          *int
	EphemeralStorage *int
	Environment      map[string]string
	ImageConfig      *ImageConfig
	Architectures    []string
	Tags             map[string]string
	LoggingConfig    *LoggingConfig
	TracingMode      string
	SnapStartApplyOn string
	DeadLetterTarget *string
	Publish          bool
}

func (in *CreateInput) config() (Config, error) {
	var v validation
	v.functionName(in.FunctionName)
	if in.Role == "" {
		v.add(nil, "role", "Member must not be null")
	} else if !roleRE.MatchString(in.Role) {
		v.add(in.Role, "role", "Member must satisfy regular expression pattern: "+rolePattern)
	}
	v.intRange(in.MemorySize, "memorySize", MinMemory, MaxMemory)
	v.intRange(in.Timeout, "timeout", MinTimeout, MaxTimeout)
	v.intRange(in.EphemeralStorage, "ephemeralStorage.size", MinEphemeral, MaxEphemeral)
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > MaxDescription {
		v.add(*in.Description, "description", "Member must have length less than or equal to 256")
	}
	if in.PackageType != "" && in.PackageType != "Image" && in.PackageType != "Zip" {
		v.add(in.PackageType, "packageType", "Member must satisfy enum value set: [Image, Zip]")
	}
	if err := v.err(); err != nil {
		return Config{}, err
	}
	if in.TracingMode != "" && in.TracingMode != "Active" && in.TracingMode != "PassThrough" {
		return Config{}, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]", in.TracingMode)
	}
	if err := validateSnapStart(in.SnapStartApplyOn); err != nil {
		return Config{}, err
	}
	ref, err := ParseRef(in.FunctionName, "", "")
	if err != nil {
		return Config{}, err
	}
	if ref.Qualifier != "" || !bareNameRE.MatchString(ref.Name) {
		return Config{}, apierr.New(apierr.InvalidParameter, "Function name %q is not valid for CreateFunction: use a name of at most 64 characters of [a-zA-Z0-9-_] without a qualifier", in.FunctionName)
	}
	if in.PackageType != "Image" {
		return Config{}, apierr.New(apierr.InvalidParameter,
			"Kappa runs container-image functions only: set PackageType to Image and Code.ImageUri to an image (Zip packages are not supported)")
	}
	if in.HasZipFile {
		return Config{}, apierr.New(apierr.InvalidParameter, "Please don't provide ZipFile, S3Bucket, S3Key or S3ObjectVersion when creating a function with package type Image.")
	}
	if in.ImageURI == "" {
		return Config{}, apierr.New(apierr.InvalidParameter, "Please provide ImageUri when creating a function with package type Image.")
	}
	if in.Runtime != "" || in.Handler != "" {
		return Config{}, apierr.New(apierr.InvalidParameter, "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image.")
	}
	if len(in.Layers) > 0 {
		return Config{}, apierr.New(apierr.InvalidParameter, "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image.")
	}
	for _, check := range []error{validateEnv(in.Environment), validateArchitectures(in.Architectures),
		validateImageConfig(in.ImageConfig), validateLogging(in.LoggingConfig, false), ValidateTags(in.Tags)} {
		if check != nil {
			return Config{}, check
		}
	}
	c := Config{
		Name:             ref.Name,
		Version:          LatestVersion,
		Role:             in.Role,
		MemorySize:       deref(in.MemorySize, DefaultMemory),
		Timeout:          deref(in.Timeout, DefaultTimeout),
		EphemeralStorage: deref(in.EphemeralStorage, DefaultEphemeral),
		Environment:      in.Environment,
		Architectures:    []string{"x86_64"},
		LoggingConfig:    LoggingConfig{LogFormat: "Text"},
		TracingMode:      "PassThrough",
		Code:             Code{ImageURI: in.ImageURI},
	}
	if in.Description != nil {
		c.Description = *in.Description
	}
	if in.ImageConfig != nil {
		c.ImageConfig = *in.ImageConfig
	}
	if in.Architectures != nil {
		c.Architectures = slices.Clone(in.Architectures)
	}
	if in.LoggingConfig != nil {
		c.LoggingConfig = *in.LoggingConfig
		if c.LoggingConfig.LogFormat == "" {
			c.LoggingConfig.LogFormat = "Text"
		}
	}
	if in.TracingMode != "" {
		c.TracingMode = in.TracingMode
	}
	if in.DeadLetterTarget != nil {
		if err := validateDeadLetter(*in.DeadLetterTarget); err != nil {
			return Config{}, err
		}
		c.DeadLetterTarget = *in.DeadLetterTarget
	}
	if in.SnapStartApplyOn == SnapStartPublished {
		c.SnapStart = SnapStartPublished
	}
	return c, nil
}

var deadLetterRE = regexp.MustCompile(`^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:\d{12}:[a-zA-Z0-9_-]{1,80}$`)

// validateDeadLetter checks a DeadLetterConfig.TargetArn ("" clears it).
func validateDeadLetter(arn string) error {
	if arn != "" && !deadLetterRE.MatchString(arn) {
		return apierr.New(apierr.InvalidParameter,
			"The provided target ARN %q is invalid: a dead-letter target is a Kappa queue, arn:aws:sqs:<region>:<account>:<name>", arn)
	}
	return nil
}

func deref(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// UpdateCodeInput is an UpdateFunctionCode request.
type UpdateCodeInput struct {
	ImageURI      string
	Architectures []string
	RevisionID    string
	DryRun        bool
	Publish       bool
}

// UpdateConfigInput is an UpdateFunctionConfiguration request. Nil fields
// are left unchanged.
type UpdateConfigInput struct {
	Role             *string
	Description      *string
	MemorySize       *int
	Timeout          *int
	EphemeralStorage *int
	Environment      map[string]string
	HasEnvironment   bool
	ImageConfig      *ImageConfig
	LoggingConfig    *LoggingConfig
	TracingMode      string
	SnapStartApplyOn string
	RevisionID       string
	Runtime          string
	Handler          string
	Layers           []string
	DeadLetterTarget *string
}

func (in *UpdateConfigInput) validate() error {
	var v validation
	if in.Role != nil && !roleRE.MatchString(*in.Role) {
		v.add(*in.Role, "role", "Member must satisfy regular expression pattern: "+rolePattern)
	}
	v.intRange(in.MemorySize, "memorySize", MinMemory, MaxMemory)
	v.intRange(in.Timeout, "timeout", MinTimeout, MaxTimeout)
	v.intRange(in.EphemeralStorage, "ephemeralStorage.size", MinEphemeral, MaxEphemeral)
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > MaxDescription {
		v.add(*in.Description, "description", "Member must have length less than or equal to 256")
	}
	if err := v.err(); err != nil {
		return err
	}
	if in.Runtime != "" || in.Handler != "" || len(in.Layers) > 0 {
		return apierr.New(apierr.InvalidParameter, "Please don't provide Handler or Runtime or Layer when the intended function PackageType is Image.")
	}
	if in.TracingMode != "" && in.TracingMode != "Active" && in.TracingMode != "PassThrough" {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]", in.TracingMode)
	}
	if err := validateSnapStart(in.SnapStartApplyOn); err != nil {
		return err
	}
	if in.DeadLetterTarget != nil {
		if err := validateDeadLetter(*in.DeadLetterTarget); err != nil {
			return err
		}
	}
	for _, check := range []error{validateEnv(in.Environment), validateImageConfig(in.ImageConfig), validateLogging(in.LoggingConfig, true)} {
		if check != nil {
			return check
		}
	}
	return nil
}

func (in *UpdateConfigInput) apply(c *Config) {
	if in.Role != nil {
		c.Role = *in.Role
	}
	if in.Description != nil {
		c.Description = *in.Description
	}
	if in.MemorySize != nil {
		c.MemorySize = *in.MemorySize
	}
	if in.Timeout != nil {
		c.Timeout = *in.Timeout
	}
	if in.EphemeralStorage != nil {
		c.EphemeralStorage = *in.EphemeralStorage
	}
	if in.HasEnvironment {
		c.Environment = maps.Clone(in.Environment)
	}
	if in.ImageConfig != nil {
		c.ImageConfig = *in.ImageConfig
	}
	if in.LoggingConfig != nil {
		lc := *in.LoggingConfig
		if lc.LogFormat == "" {
			lc.LogFormat = c.LoggingConfig.LogFormat
		}
		lc.LogGroup = defaultLogGroup(lc.LogGroup, c.Name)
		c.LoggingConfig = lc
	}
	if in.TracingMode != "" {
		c.TracingMode = in.TracingMode
	}
	if in.DeadLetterTarget != nil {
		c.DeadLetterTarget = *in.DeadLetterTarget
	}
	switch in.SnapStartApplyOn {
	case SnapStartPublished:
		c.SnapStart = SnapStartPublished
	case "None":
		c.SnapStart = ""
	}
}
