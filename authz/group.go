package authz

import "context"

// ObjectGroupPrefix starts the object of a consumer group: group "payments-app" is the object
// "group:payments-app". Topic names cannot contain ':', so no topic is mistaken for a group.
const ObjectGroupPrefix = "group:"

// GroupObject returns the object of consumer group group: ObjectGroupPrefix + group.
func GroupObject(group string) string { return ObjectGroupPrefix + group }

// GroupAuthorizer is an optional interface of an Authorizer whose policy may make consumer
// groups objects of their own (Kafka's group ACLs), next to the topics they read.
//
// Compatibility, like Kafka's allow.everyone.if.no.acl.found for groups: a policy that names
// no group object (no rule whose object starts with ObjectGroupPrefix) turns group checks off,
// and a group call needs only its topics' permissions, as before groups were objects. A policy
// that names one turns them on for every group: a group call then also needs the group's
// permission (deny by default). A rule for ObjectAll ("*") stands for every group too, but
// does not by itself turn the checks on.
type GroupAuthorizer interface {
	Authorizer
	// GroupChecks reports whether the current policy names a group object (group checks
	// on). Safe for concurrent use.
	GroupChecks() bool
	// AuthorizeGroup decides whether subject may perform action on consumer group group
	// (its object, GroupObject(group), or ObjectAll), deciding with one policy: nil when that
	// policy turns group checks off. Errors as Authorize does, a denial naming the group's
	// object. Safe for concurrent use.
	AuthorizeGroup(ctx context.Context, subject, group, action string) error
}

// AuthorizeGroup decides whether subject may perform action on consumer group group: with a
// GroupAuthorizer, its AuthorizeGroup; any other Authorizer has no group checks (nil).
func AuthorizeGroup(ctx context.Context, a Authorizer, subject, group, action string) error {
	if ga, ok := a.(GroupAuthorizer); ok {
		return ga.AuthorizeGroup(ctx, subject, group, action)
	}
	return nil
}

// GroupChecks reports whether a checks consumer groups (a GroupAuthorizer whose policy names a
// group object; see GroupAuthorizer).
func GroupChecks(a Authorizer) bool {
	ga, ok := a.(GroupAuthorizer)
	return ok && ga.GroupChecks()
}
