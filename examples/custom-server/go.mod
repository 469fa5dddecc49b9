module example.com/custom-server

go 1.26.0

require (
	github.com/commitlog-go/commitlog/authz v0.1.0
	github.com/commitlog-go/commitlog/client v0.1.0
	github.com/commitlog-go/commitlog/discovery v0.1.0
	github.com/commitlog-go/commitlog/server v0.1.0
	github.com/commitlog-go/commitlog/storage v0.1.0
	github.com/commitlog-go/commitlog/transport v0.1.0
)
