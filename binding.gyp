{
  "targets": [
    {
      "target_name": "vfio_bars",
      "sources": ["native/vfio_bars.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
