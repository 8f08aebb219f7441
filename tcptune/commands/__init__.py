"""One module per subcommand: each gathers from tcptune.system, calls the pure logic, renders."""
