module oxide/bench/peers/go

go 1.19
