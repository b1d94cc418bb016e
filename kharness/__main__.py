from kharness.cli import main

main()
