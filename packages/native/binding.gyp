{
  "targets": [
    {
      "target_name": "virq_native",
      "sources": ["addon/virq_native.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
