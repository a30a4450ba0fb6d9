// Placeholder so the target builds until codegen/ writes the protoc-c output.
