/*
 * What an N-API call costs without the kernel, for bench/profile/napi-floor.ts: the same call shape as the
 * shim's setUserMemoryRegion (six arguments: int32, two u32, three lossless u64 BigInts) doing no ioctl,
 * and an empty call. Built by napi-floor.ts with cc against the system's node_api.h; not part of the package.
 */
#include <stdbool.h>
#include <stdint.h>
#include <node_api.h>

static napi_value empty(napi_env env, napi_callback_info info) {
  (void)env; (void)info;
  return NULL;
}

/* The shim's argument handling (native/vfio_bars.c set_user_memory_region) minus the ioctl and error paths. */
static napi_value args6(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  double d;
  uint64_t u;
  bool lossless;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return NULL;
  for (int i = 0; i < 3; i++) napi_get_value_double(env, argv[i], &d);
  for (int i = 3; i < 6; i++) napi_get_value_bigint_uint64(env, argv[i], &u, &lossless);
  return NULL;
}

/* A pre-encoded struct kvm_userspace_memory_region in a typed array: one lookup instead of six conversions. */
static napi_value struct2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return NULL;
  napi_get_value_int32(env, argv[0], &fd);
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &buffer, &offset) != napi_ok || length != 4) return NULL;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"empty", NULL, empty, NULL, NULL, NULL, napi_enumerable, NULL},
    {"args6", NULL, args6, NULL, NULL, NULL, napi_enumerable, NULL},
    {"struct2", NULL, struct2, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
