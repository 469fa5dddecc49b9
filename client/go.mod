module github.com/commitlog-go/commitlog/client

go 1.26
