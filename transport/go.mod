module github.com/commitlog-go/commitlog/transport

go 1.26
