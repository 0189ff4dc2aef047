package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/kappa-run/kappa/internal/apierr"
)

// Resource-based policies: AddPermission adds a statement to the policy of
// a function, or of one of its published versions or aliases; GetPolicy
// returns the policy and RemovePermission removes a statement. Kappa keeps
// these policies in the Function record, by qualifier, so that deployment
// tools that manage them (Terraform's aws_lambda_permission, the aws CLI)
// work unchanged and read back what they wrote, and so that they go with
// the function, version or alias.
//
// Kappa does not enforce them: it has no IAM, and the services a policy
// lets in (S3, SNS, EventBridge, other accounts) do not invoke through it.
// Who may call a Kappa server is decided by where it listens.

// MaxPolicyBytes is the largest policy document of one qualifier, as in
// Lambda.
const MaxPolicyBytes = 20480

// Limits of AddPermission's members, from Lambda's API model.
const (
	maxStatementID      = 100
	maxEventSourceToken = 256
)

var (
	statementIDRE    = regexp.MustCompile(`^[a-zA-Z0-9-_]+$`)
	namespacedSIDRE  = regexp.MustCompile(`^[a-zA-Z0-9-_.]+$`)
	actionRE         = regexp.MustCompile(`^(lambda:[*]|lambda:[a-zA-Z]+|[*])$`)
	principalRE      = regexp.MustCompile(`^[^\s]+$`)
	sourceArnPattern = `arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)`
	sourceArnRE      = regexp.MustCompile(`^` + sourceArnPattern + `$`)
	accountRE        = regexp.MustCompile(`^\d{12}$`)
	eventSourceRE    = regexp.MustCompile(`^[a-zA-Z0-9._\-]+$`)
	orgIDRE          = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	servicePrincipal = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*\.(amazonaws\.com(\.cn)?|amazon\.com)$`)
	iamPrincipalRE   = regexp.MustCompile(`^arn:aws[a-zA-Z-]*:(iam|sts)::\d{12}:[a-zA-Z0-9+=,.@_/-]+$`)
)

// maxEcho is how much of a refused value an error message repeats.
const maxEcho = 256

// Principal is a statement's principal: {"Service": …} for an AWS service,
// {"AWS": …} for an account or IAM identity, and "*" (the zero value) for
// everyone.
type Principal struct {
	Service string `json:"Service,omitempty"`
	AWS     string `json:"AWS,omitempty"`
}

type principalFields Principal

// MarshalJSON writes the zero Principal as "*".
func (p Principal) MarshalJSON() ([]byte, error) {
	if p == (Principal{}) {
		return []byte(`"*"`), nil
	}
	return json.Marshal(principalFields(p))
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Principal) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "*" {
			return fmt.Errorf("principal %q is neither \"*\" nor an object", s)
		}
		*p = Principal{}
		return nil
	}
	return json.Unmarshal(b, (*principalFields)(p))
}

// Statement is one statement of a policy, in the shape GetPolicy and
// AddPermission return it (and the JSON it is stored as).
type Statement struct {
	Sid       string    `json:"Sid"`
	Effect    string    `json:"Effect"`
	Principal Principal `json:"Principal"`
	Action    string    `json:"Action"`
	Resource  string    `json:"Resource"`
	// Condition maps an operator (StringEquals, ArnLike, Bool) to its keys
	// and values.
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// Policy is the resource-based policy of a function or of one qualifier.
// RevisionID changes with every statement added or removed.
type Policy struct {
	Statements []Statement `json:"statements"`
	RevisionID string      `json:"revisionId"`
}

// Document is the IAM policy document GetPolicy returns as a string.
func (p Policy) Document() []byte {
	b, _ := json.Marshal(struct {
		Version   string      `json:"Version"`
		ID        string      `json:"Id"`
		Statement []Statement `json:"Statement"`
	}{"2012-10-17", "default", p.Statements})
	return b
}

// PermissionInput is an AddPermission request. Empty members are absent.
type PermissionInput struct {
	StatementID           string
	Action                string
	Principal             string
	SourceArn             string
	SourceAccount         string
	EventSourceToken      string
	PrincipalOrgID        string
	FunctionURLAuthType   string
	InvokedViaFunctionURL bool
	// RevisionID, when set, must be the policy's current RevisionID.
	RevisionID string
}

// Validate checks the members against Lambda's API model, reporting every
// violation in one ValidationException as Lambda's front end does.
func (in PermissionInput) Validate() error {
	var v validation
	switch {
	case in.StatementID == "":
		v.add(nil, "statementId", "Member must not be null")
	case utf8.RuneCountInString(in.StatementID) > maxStatementID:
		v.add(truncate(in.StatementID, maxEcho), "statementId", fmt.Sprintf("Member must have length less than or equal to %d", maxStatementID))
	case !statementIDRE.MatchString(in.StatementID):
		v.add(truncate(in.StatementID, maxEcho), "statementId", "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")
	}
	switch {
	case in.Action == "":
		v.add(nil, "action", "Member must not be null")
	case !actionRE.MatchString(in.Action):
		v.add(truncate(in.Action, maxEcho), "action", "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])")
	}
	switch {
	case in.Principal == "":
		v.add(nil, "principal", "Member must not be null")
	case !principalRE.MatchString(in.Principal):
		v.add(truncate(in.Principal, maxEcho), "principal", `Member must satisfy regular expression pattern: [^\s]+`)
	}
	if in.SourceArn != "" && (!sourceArnRE.MatchString(in.SourceArn) || hasControl(in.SourceArn)) {
		v.add(truncate(in.SourceArn, maxEcho), "sourceArn", "Member must satisfy regular expression pattern: "+sourceArnPattern)
	}
	if in.SourceAccount != "" && !accountRE.MatchString(in.SourceAccount) {
		v.add(truncate(in.SourceAccount, maxEcho), "sourceAccount", `Member must satisfy regular expression pattern: \d{12}`)
	}
	switch {
	case in.EventSourceToken == "":
	case len(in.EventSourceToken) > maxEventSourceToken:
		v.add(truncate(in.EventSourceToken, maxEcho), "eventSourceToken", fmt.Sprintf("Member must have length less than or equal to %d", maxEventSourceToken))
	case !eventSourceRE.MatchString(in.EventSourceToken):
		v.add(truncate(in.EventSourceToken, maxEcho), "eventSourceToken", `Member must satisfy regular expression pattern: [a-zA-Z0-9._\-]+`)
	}
	if in.PrincipalOrgID != "" && !orgIDRE.MatchString(in.PrincipalOrgID) {
		v.add(truncate(in.PrincipalOrgID, maxEcho), "principalOrgID", "Member must satisfy regular expression pattern: ^o-[a-z0-9]{10,32}$")
	}
	if t := in.FunctionURLAuthType; t != "" && t != "NONE" && t != "AWS_IAM" {
		v.add(truncate(t, maxEcho), "functionUrlAuthType", "Member must satisfy enum value set: [AWS_IAM, NONE]")
	}
	if err := v.err(); err != nil {
		return err
	}
	_, err := principalOf(in.Principal)
	return err
}

// principalOf classifies an AddPermission principal as Lambda does: a
// service name, an account (written as its root ARN), an IAM or STS ARN,
// or "*".
func principalOf(p string) (Principal, error) {
	switch {
	case p == "*":
		return Principal{}, nil
	case servicePrincipal.MatchString(p):
		return Principal{Service: p}, nil
	case accountRE.MatchString(p):
		return Principal{AWS: "arn:aws:iam::" + p + ":root"}, nil
	case iamPrincipalRE.MatchString(p):
		return Principal{AWS: p}, nil
	}
	return Principal{}, apierr.New(apierr.InvalidParameter, "The provided principal was invalid. Please check the principal and try again.")
}

// statement builds the statement in adds to resource's policy.
func (in PermissionInput) statement(resource string) (Statement, error) {
	p, err := principalOf(in.Principal)
	if err != nil {
		return Statement{}, err
	}
	st := Statement{Sid: in.StatementID, Effect: "Allow", Principal: p, Action: in.Action, Resource: resource}
	cond := func(op, key, value string) {
		if st.Condition == nil {
			st.Condition = map[string]map[string]string{}
		}
		if st.Condition[op] == nil {
			st.Condition[op] = map[string]string{}
		}
		st.Condition[op][key] = value
	}
	if in.FunctionURLAuthType != "" {
		cond("StringEquals", "lambda:FunctionUrlAuthType", in.FunctionURLAuthType)
	}
	if in.PrincipalOrgID != "" {
		cond("StringEquals", "aws:PrincipalOrgID", in.PrincipalOrgID)
	}
	if in.SourceAccount != "" {
		cond("StringEquals", "AWS:SourceAccount", in.SourceAccount)
	}
	if in.EventSourceToken != "" {
		cond("StringEquals", "lambda:EventSourceToken", in.EventSourceToken)
	}
	if in.InvokedViaFunctionURL {
		cond("Bool", "lambda:InvokedViaFunctionUrl", "true")
	}
	if in.SourceArn != "" {
		cond("ArnLike", "AWS:SourceArn", in.SourceArn)
	}
	return st, nil
}

// policyKey is the key of ref's policy in Function.Policies: "" for the
// function itself ($LATEST shares it), else the version (as a plain
// number: "01" is version 1) or alias.
func policyKey(ref Ref) string {
	switch q := ref.Qualifier; {
	case q == LatestVersion:
		return ""
	case q != "" && isVersion(q):
		if n, err := strconv.Atoi(q); err == nil {
			return strconv.Itoa(n)
		}
	}
	return ref.Qualifier
}

// policyTarget checks that the version or alias ref names exists; the
// function itself is checked by the read or write that follows.
func (s *Service) policyTarget(ctx context.Context, ref Ref) error {
	if policyKey(ref) == "" {
		return nil
	}
	_, err := s.Config(ctx, ref)
	return err
}

func policyRevisionMismatch() error {
	return apierr.New(apierr.PreconditionFailed,
		"The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id")
}

// AddPermission adds a statement to the policy of the function, version or
// alias ref names, and returns it. Statement ids are unique per policy;
// $LATEST cannot have a policy of its own, as in Lambda.
func (s *Service) AddPermission(ctx context.Context, ref Ref, in PermissionInput) (Statement, error) {
	if err := in.Validate(); err != nil {
		return Statement{}, err
	}
	if ref.Qualifier == LatestVersion {
		return Statement{}, apierr.New(apierr.InvalidParameter, "We currently do not support adding policies for $LATEST.")
	}
	q := policyKey(ref)
	st, err := in.statement(s.ARN(ref.Name, q))
	if err != nil {
		return Statement{}, err
	}
	if err := s.policyTarget(ctx, ref); err != nil {
		return Statement{}, err
	}
	_, err = s.mutate(ctx, ref.Name, func(fn *Function) error {
		p := fn.Policies[q]
		if in.RevisionID != "" && in.RevisionID != p.RevisionID {
			return policyRevisionMismatch()
		}
		if slices.ContainsFunc(p.Statements, func(x Statement) bool { return x.Sid == st.Sid }) {
			return apierr.New(apierr.Conflict,
				"The statement id (%s) provided already exists. Please provide a new statement id, or remove the existing statement.", st.Sid)
		}
		p.Statements = append(slices.Clone(p.Statements), st)
		if n := len(p.Document()); n > MaxPolicyBytes {
			return apierr.New(apierr.PolicyTooLong, "The final policy size (%d) is bigger than the limit (%d).", n, MaxPolicyBytes)
		}
		p.RevisionID = uuid.NewString()
		fn.Policies = withPolicy(fn.Policies, q, p)
		return nil
	})
	if err != nil {
		return Statement{}, err
	}
	return st, nil
}

// Policy returns a copy of the policy of the function, version or alias
// ref names (GetPolicy); ResourceNotFoundException when it has no
// statement.
func (s *Service) Policy(ctx context.Context, ref Ref) (Policy, error) {
	if err := s.policyTarget(ctx, ref); err != nil {
		return Policy{}, err
	}
	fn, err := s.Get(ctx, ref.Name)
	if err != nil {
		return Policy{}, err
	}
	p, ok := fn.Policies[policyKey(ref)]
	if !ok || len(p.Statements) == 0 {
		return Policy{}, apierr.New(apierr.NotFound, "The resource you requested does not exist.")
	}
	p.Statements = slices.Clone(p.Statements)
	for i, st := range p.Statements {
		if st.Condition != nil {
			cond := make(map[string]map[string]string, len(st.Condition))
			for op, kv := range st.Condition {
				cond[op] = maps.Clone(kv)
			}
			p.Statements[i].Condition = cond
		}
	}
	return p, nil
}

// RemovePermission removes statement sid from the policy of the function,
// version or alias ref names (RemovePermission); revisionID, when set,
// must be the policy's.
func (s *Service) RemovePermission(ctx context.Context, ref Ref, sid, revisionID string) error {
	var v validation
	switch {
	case utf8.RuneCountInString(sid) > maxStatementID:
		v.add(truncate(sid, maxEcho), "statementId", fmt.Sprintf("Member must have length less than or equal to %d", maxStatementID))
	case !namespacedSIDRE.MatchString(sid):
		v.add(truncate(sid, maxEcho), "statementId", "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_.]+)")
	}
	if err := v.err(); err != nil {
		return err
	}
	if err := s.policyTarget(ctx, ref); err != nil {
		return err
	}
	q := policyKey(ref)
	_, err := s.mutate(ctx, ref.Name, func(fn *Function) error {
		p, ok := fn.Policies[q]
		if !ok {
			return apierr.New(apierr.NotFound, "No policy is associated with the given resource.")
		}
		i := slices.IndexFunc(p.Statements, func(x Statement) bool { return x.Sid == sid })
		if i < 0 {
			return apierr.New(apierr.NotFound, "Statement %s is not found in resource policy.", sid)
		}
		if revisionID != "" && revisionID != p.RevisionID {
			return policyRevisionMismatch()
		}
		p.Statements = slices.Delete(slices.Clone(p.Statements), i, i+1)
		p.RevisionID = uuid.NewString()
		fn.Policies = withPolicy(fn.Policies, q, p)
		return nil
	})
	return err
}

// dropPolicy removes the policy of a deleted version or alias, so that an
// alias created again under the same name starts without one.
func (s *Service) dropPolicy(ctx context.Context, name, qualifier string) error {
	_, err := s.mutate(ctx, name, func(fn *Function) error {
		if _, ok := fn.Policies[qualifier]; !ok {
			return errSkip
		}
		fn.Policies = withPolicy(fn.Policies, qualifier, Policy{})
		return nil
	})
	if errors.Is(err, errSkip) || errors.Is(err, apierr.NotFound) {
		return nil
	}
	return err
}

// withPolicy returns a copy of policies with q set to p, or removed when p
// has no statement; nil when none is left. The stored map is never
// changed in place: loaded records share it.
func withPolicy(policies map[string]Policy, q string, p Policy) map[string]Policy {
	out := maps.Clone(policies)
	if out == nil {
		out = map[string]Policy{}
	}
	if len(p.Statements) == 0 {
		delete(out, q)
	} else {
		out[q] = p
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// truncate shortens s to at most n runes for an error message.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
