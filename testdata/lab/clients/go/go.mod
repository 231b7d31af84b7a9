module sweep

go 1.19
