from cardiomesh.cli import main

main()
