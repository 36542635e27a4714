.PHONY: run test bench services-up services-down

# Run TaskFlow on its embedded default (SQLite under ./data, no servers).
run:
	scripts/run

# The whole test suite (installs what it needs).
test:
	scripts/test

bench:
	scripts/bench

services-up:
	scripts/services up

services-down:
	scripts/services down
