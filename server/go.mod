module github.com/commitlog-go/commitlog/server

go 1.26

require (
	github.com/commitlog-go/commitlog/consensus v0.1.0
	github.com/commitlog-go/commitlog/storage v0.1.0
	go.uber.org/goleak v1.3.0
)
