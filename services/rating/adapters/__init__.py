"""What talks to other processes through the framework: RPC pulls from the invitation
sources, and the eventlet group commit of concurrent workers' evaluations."""
