module github.com/commitlog-go/commitlog/client

go 1.26

require (
	github.com/commitlog-go/commitlog/transport v0.1.0
	go.uber.org/goleak v1.3.0
)
