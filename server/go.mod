module github.com/commitlog-go/commitlog/server

go 1.26
