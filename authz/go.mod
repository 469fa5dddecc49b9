module github.com/commitlog-go/commitlog/authz

go 1.26
