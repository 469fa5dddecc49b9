package casbin_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/commitlog-go/commitlog/authz"
	"github.com/commitlog-go/commitlog/authz/casbin"
)

// The seed project's policy: root may produce and consume, nobody may do
// nothing. The embedded default model decides it as the seed's model did.
func ExampleNew() {
	a, err := casbin.New(casbin.Config{PolicyFile: "testdata/seed/policy.csv"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for _, req := range []struct{ subject, action string }{
		{"root", authz.ActionProduce},
		{"root", authz.ActionAdmin},
		{"nobody", authz.ActionConsume},
	} {
		err := a.Authorize(ctx, req.subject, authz.ObjectAll, req.action)
		fmt.Printf("%s %s: allowed=%v denied=%v\n", req.subject, req.action, err == nil, errors.Is(err, authz.ErrDenied))
	}
	// Output:
	// root produce: allowed=true denied=false
	// root admin: allowed=false denied=true
	// nobody consume: allowed=false denied=true
}
