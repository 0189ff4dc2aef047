package function

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/kappa-run/kappa/internal/apierr"
)

// Limits from Lambda's API model.
const (
	MinMemory, MaxMemory       = 128, 10240
	DefaultMemory              = 128
	MinTimeout, MaxTimeout     = 1, 900
	DefaultTimeout             = 3
	MinEphemeral, MaxEphemeral = 512, 10240
	DefaultEphemeral           = 512
	MaxDescription             = 256
	MaxEnvBytes                = 4096
	MaxNameLength              = 64
)

var (
	namePattern = `(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?`
	nameRE      = regexp.MustCompile(`^` + namePattern + `$`)
	bareNameRE  = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)
	rolePattern = `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`
	roleRE      = regexp.MustCompile(`^` + rolePattern + `$`)
	envKeyRE    = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
	qualifierRE = regexp.MustCompile(`^(|[a-zA-Z0-9$_-]+)$`)
	arnRE       = regexp.MustCompile(`^(?:arn:aws[a-zA-Z-]*:lambda:([a-z]{2}(?:-gov)?-[a-z]+-\d):(\d{12}):function:|(\d{12}):function:)?([a-zA-Z0-9-_]+)(?::(\$LATEST|[a-zA-Z0-9-_]+))?$`)
)

// reservedEnv are keys Lambda sets itself and refuses in Environment.
var reservedEnv = map[string]bool{
	"_HANDLER": true, "_X_AMZN_TRACE_ID": true, "AWS_REGION": true, "AWS_DEFAULT_REGION": true,
	"AWS_EXECUTION_ENV": true, "AWS_LAMBDA_FUNCTION_NAME": true, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": true,
	"AWS_LAMBDA_FUNCTION_VERSION": true, "AWS_LAMBDA_INITIALIZATION_TYPE": true,
	"AWS_LAMBDA_LOG_GROUP_NAME": true, "AWS_LAMBDA_LOG_STREAM_NAME": true, "AWS_ACCESS_KEY_ID": true,
	"AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true, "AWS_LAMBDA_RUNTIME_API": true,
	"LAMBDA_TASK_ROOT": true, "LAMBDA_RUNTIME_DIR": true,
}

// validation collects "Value 'x' at 'field' failed to satisfy constraint"
// messages into one ValidationException, as Lambda's front end does.
type validation []string

func (v *validation) add(value any, field, constraint string) {
	var vs string
	switch x := value.(type) {
	case nil:
		vs = "null"
	case string:
		vs = "'" + x + "'"
	default:
		vs = fmt.Sprintf("'%v'", x)
	}
	*v = append(*v, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", vs, field, constraint))
}

func (v validation) err() error {
	switch len(v) {
	case 0:
		return nil
	case 1:
		return apierr.New(apierr.Validation, "1 validation error detected: %s", v[0])
	default:
		return apierr.New(apierr.Validation, "%d validation errors detected: %s", len(v), strings.Join(v, "; "))
	}
}

func (v *validation) intRange(value *int, field string, lo, hi int) {
	if value == nil {
		return
	}
	if *value < lo {
		v.add(*value, field, fmt.Sprintf("Member must have value greater than or equal to %d", lo))
	} else if *value > hi {
		v.add(*value, field, fmt.Sprintf("Member must have value less than or equal to %d", hi))
	}
}

func (v *validation) functionName(name string) {
	switch {
	case name == "":
		v.add(nil, "functionName", "Member must not be null")
	case len(name) > 140:
		v.add(name, "functionName", "Member must have length less than or equal to 140")
	case !nameRE.MatchString(name):
		v.add(name, "functionName", "Member must satisfy regular expression pattern: "+namePattern)
	}
}

// Ref is a parsed FunctionName: a name with an optional qualifier.
type Ref struct {
	Name      string
	Qualifier string
}

// ParseRef parses a function name, partial ARN or full ARN with an optional
// ":qualifier" suffix, and checks the region and account when given.
func ParseRef(s, region, account string) (Ref, error) {
	var v validation
	v.functionName(s)
	if err := v.err(); err != nil {
		return Ref{}, err
	}
	m := arnRE.FindStringSubmatch(s)
	if m == nil {
		return Ref{}, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", s, namePattern)
	}
	if m[1] != "" && region != "" && m[1] != region {
		return Ref{}, apierr.New(apierr.InvalidParameter, "Functions from '%s' are not reachable in this region ('%s')", m[1], region)
	}
	if acct := m[2] + m[3]; acct != "" && account != "" && acct != account {
		return Ref{}, apierr.New(apierr.NotFound, "Function not found: %s", ARN(region, acct, m[4], m[5]))
	}
	if len(m[4]) > MaxNameLength {
		return Ref{}, apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to %d", m[4], MaxNameLength)
	}
	return Ref{Name: m[4], Qualifier: m[5]}, nil
}

// ValidQualifier reports whether q is a version or alias name.
func ValidQualifier(q string) bool { return len(q) <= 128 && qualifierRE.MatchString(q) }

func validateEnv(env map[string]string) error {
	var bad []string
	size := 0
	for k, val := range env {
		size += len(k) + len(val)
		if !envKeyRE.MatchString(k) {
			return apierr.New(apierr.Validation,
				"1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]")
		}
		if reservedEnv[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return apierr.New(apierr.InvalidParameter,
			"Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s", strings.Join(bad, ", "))
	}
	if size > MaxEnvBytes {
		return apierr.New(apierr.InvalidParameter,
			"Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: %d", size)
	}
	return nil
}

func validateArchitectures(archs []string) error {
	if archs == nil {
		return nil
	}
	if len(archs) != 1 {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%v' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1", archs)
	}
	if archs[0] != "x86_64" && archs[0] != "arm64" {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '[%s]' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]", archs[0])
	}
	return nil
}

func validateImageConfig(ic *ImageConfig) error {
	if ic == nil {
		return nil
	}
	if len(ic.EntryPoint) > 1500 || len(ic.Command) > 1500 {
		return apierr.New(apierr.InvalidParameter, "ImageConfig EntryPoint and Command accept at most 1500 items")
	}
	if wd := ic.WorkingDirectory; wd != "" && (!strings.HasPrefix(wd, "/") || len(wd) > 1000) {
		return apierr.New(apierr.InvalidParameter, "ImageConfig WorkingDirectory must be an absolute path of at most 1000 characters: %q", wd)
	}
	return nil
}

// validateLogging checks a LoggingConfig's enums, and that log levels come
// with the JSON format. partial is for an update: a LoggingConfig without LogFormat keeps the
// function's, so whether levels may be set is checked on the result.
func validateLogging(lc *LoggingConfig, partial bool) error {
	if lc == nil {
		return nil
	}
	if lc.LogFormat != "" && lc.LogFormat != "JSON" && lc.LogFormat != "Text" {
		return apierr.New(apierr.Validation,
			"1 validation error detected: Value '%s' at 'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy enum value set: [JSON, Text]", lc.LogFormat)
	}
	levels := map[string]bool{"": true, "TRACE": true, "DEBUG": true, "INFO": true, "WARN": true, "ERROR": true, "FATAL": true}
	if !levels[lc.ApplicationLogLevel] || !levels[lc.SystemLogLevel] {
		return apierr.New(apierr.Validation, "1 validation error detected: log level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL")
	}
	if (lc.ApplicationLogLevel != "" || lc.SystemLogLevel != "") && lc.LogFormat != "JSON" && !(partial && lc.LogFormat == "") {
		return apierr.New(apierr.InvalidParameter, "To use ApplicationLogLevel or SystemLogLevel you must set LogFormat to JSON.")
	}
	return nil
}

// validateSnapStart checks the spelling of SnapStart.ApplyOn; whether this
// server can take snapshots is Service.checkSnapStart's question.
func validateSnapStart(applyOn string) error {
	switch applyOn {
	case "", "None", SnapStartPublished:
		return nil
	}
	return apierr.New(apierr.Validation,
		"1 validation error detected: Value '%s' at 'snapStart.applyOn' failed to satisfy constraint: Member must satisfy enum value set: [PublishedVersions, None]", applyOn)
}
