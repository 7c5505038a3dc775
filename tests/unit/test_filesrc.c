/* Tests for k8s/filesrc.c on a real libuv loop and real files in a temporary directory:
 * first read and sync, rename-over and ConfigMap-style link swaps, broken and missing
 * files, a single object, and the none source. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <urcu/urcu-memb.h>
#include <uv.h>

#include "agent/meshtab.h"
#include "agent/wire.h"
#include "k8s/filesrc.h"
#include "k8s/sestore.h"

struct env {
	char dir[64];
	char path[128];
	uv_loop_t loop;
	uv_timer_t tick;
	struct meshtab *table;
	struct sestore *store;
	struct filesrc *src;
};

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Writes @text beside the file and renames it over, as an atomic update does. */
static void replace_file(struct env *e, const char *text)
{
	char tmp[160];

	snprintf(tmp, sizeof(tmp), "%s/.new", e->dir);
	write_file(tmp, text);
	assert_int_equal(rename(tmp, e->path), 0);
}

static char *read_example(void)
{
	FILE *fp = fopen(MESHDNS_SOURCE_DIR "/examples/serviceentries.json", "r");
	char *buf = calloc(1, 65536);

	assert_non_null(fp);
	assert_true(fread(buf, 1, 65535, fp) > 0);
	fclose(fp);
	return buf;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct meshtab_opts mo = { .auto_zones = true, .ttl = 30, .neg_ttl = 5 };
	struct sestore_opts so = { .auto_zones = true };

	if (!e)
		return -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/meshdns-filesrc-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->path, sizeof(e->path), "%s/serviceentries.json", e->dir);
	uv_loop_init(&e->loop);
	uv_timer_init(&e->loop, &e->tick);
	uv_timer_start(&e->tick, on_tick, 10, 10);
	e->table = meshtab_new(&mo);
	e->store = sestore_new(&so, e->table);
	*state = e;
	return e->table && e->store ? 0 : -1;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	filesrc_stop(e->src);
	uv_close((uv_handle_t *)&e->tick, NULL);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	uv_loop_close(&e->loop);
	sestore_free(e->store);
	meshtab_free(e->table);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		return -1;
	free(e);
	return 0;
}

static struct filesrc_status status(struct env *e)
{
	struct filesrc_status st;

	filesrc_get_status(e->src, &st);
	return st;
}

/* Runs the loop until the source has done @reads reads (good or bad) or @ms pass. */
static bool run_until_reads(struct env *e, uint64_t reads, uint64_t ms)
{
	uint64_t start = uv_now(&e->loop);

	while (status(e).reads_ok + status(e).reads_failed < reads) {
		if (uv_now(&e->loop) - start > ms)
			return false;
		uv_run(&e->loop, UV_RUN_ONCE);
	}
	return true;
}

static struct meshview_info info(struct env *e)
{
	struct meshview_info i;

	meshview_get_info(meshtab_view(e->table), &i);
	return i;
}

static void test_example_list_is_read_and_marks_the_table_synced(void **state)
{
	struct env *e = *state;
	char *text = read_example();

	write_file(e->path, text);
	free(text);
	assert_false(info(e).synced);
	assert_int_equal(filesrc_start(&e->loop, e->path, e->store, &e->src), 0);
	assert_true(run_until_reads(e, 1, 3000));
	assert_true(status(e).synced);
	assert_int_equal(status(e).reads_ok, 1);
	assert_true(status(e).last_ok_unix > 1600000000);
	assert_true(info(e).synced);
	assert_int_equal(info(e).hosts, 3);
	assert_int_equal(info(e).zones, 1); /* cluster-2, learned */
}

static void test_rename_over_the_file_is_applied_within_a_second(void **state)
{
	struct env *e = *state;

	write_file(e->path, "{\"kind\":\"List\",\"items\":[]}");
	assert_int_equal(filesrc_start(&e->loop, e->path, e->store, &e->src), 0);
	assert_true(run_until_reads(e, 1, 3000));
	assert_int_equal(info(e).hosts, 0);
	replace_file(e, "{\"kind\":\"ServiceEntry\",\"metadata\":{\"namespace\":\"a\",\"name\":"
			"\"b\"},\"spec\":{\"hosts\":[\"x.cluster-2\"],\"addresses\":"
			"[\"240.0.0.9\"],\"location\":\"MESH_INTERNAL\"}}");
	assert_true(run_until_reads(e, 2, 1000));
	assert_int_equal(info(e).hosts, 1);
}

static void test_configmap_link_swap_is_applied(void **state)
{
	struct env *e = *state;
	char d1[160], d2[160], data[160], tmp[160], f[200];

	snprintf(d1, sizeof(d1), "%s/..2020_06_02_1", e->dir);
	snprintf(d2, sizeof(d2), "%s/..2020_06_02_2", e->dir);
	snprintf(data, sizeof(data), "%s/..data", e->dir);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", e->dir);
	assert_int_equal(mkdir(d1, 0755), 0);
	snprintf(f, sizeof(f), "%s/serviceentries.json", d1);
	write_file(f, "{\"kind\":\"List\",\"items\":[]}");
	assert_int_equal(symlink("..2020_06_02_1", data), 0);
	assert_int_equal(symlink("..data/serviceentries.json", e->path), 0);
	assert_int_equal(filesrc_start(&e->loop, e->path, e->store, &e->src), 0);
	assert_true(run_until_reads(e, 1, 3000));
	assert_int_equal(info(e).hosts, 0);

	assert_int_equal(mkdir(d2, 0755), 0);
	snprintf(f, sizeof(f), "%s/serviceentries.json", d2);
	write_file(f, "{\"kind\":\"List\",\"items\":[{\"metadata\":{\"namespace\":\"a\",\"name\":"
		      "\"b\"},\"spec\":{\"hosts\":[\"x.cluster-2\"],\"addresses\":"
		      "[\"240.0.0.9\"],\"location\":\"MESH_INTERNAL\"}}]}");
	assert_int_equal(symlink("..2020_06_02_2", tmp), 0);
	assert_int_equal(rename(tmp, data), 0);
	assert_true(run_until_reads(e, 2, 1000));
	assert_int_equal(info(e).hosts, 1);
}

static void test_broken_file_keeps_the_last_good_table(void **state)
{
	struct env *e = *state;
	char *text = read_example();

	write_file(e->path, text);
	free(text);
	assert_int_equal(filesrc_start(&e->loop, e->path, e->store, &e->src), 0);
	assert_true(run_until_reads(e, 1, 3000));
	replace_file(e, "{\"kind\":\"List\",\"items\":[{\"metadata\":");
	assert_true(run_until_reads(e, 2, 1000));
	assert_int_equal(status(e).reads_failed, 1);
	assert_int_equal(info(e).hosts, 3);
	replace_file(e, "[1, 2, 3]");
	assert_true(run_until_reads(e, 3, 1000));
	assert_int_equal(status(e).reads_failed, 2);
	assert_int_equal(info(e).hosts, 3);
}

static void test_missing_file_stays_unsynced_until_it_appears(void **state)
{
	struct env *e = *state;

	assert_int_equal(filesrc_start(&e->loop, e->path, e->store, &e->src), 0);
	assert_true(run_until_reads(e, 1, 3000));
	assert_int_equal(status(e).reads_failed, 1);
	assert_false(info(e).synced);
	replace_file(e, "{\"kind\":\"List\",\"items\":[]}");
	assert_true(run_until_reads(e, 2, 2000));
	assert_true(info(e).synced);
}

static void test_missing_directory_is_an_error(void **state)
{
	struct env *e = *state;
	struct filesrc *f = NULL;

	assert_int_equal(filesrc_start(&e->loop, "/nonexistent-meshdns-dir/x.json", e->store, &f),
			 -ENOENT);
}

static void test_none_source_is_synced_and_empty(void **state)
{
	struct env *e = *state;

	assert_int_equal(filesrc_start_none(e->store), 0);
	assert_true(info(e).synced);
	assert_int_equal(info(e).hosts, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_example_list_is_read_and_marks_the_table_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_rename_over_the_file_is_applied_within_a_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configmap_link_swap_is_applied, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_broken_file_keeps_the_last_good_table, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_stays_unsynced_until_it_appears,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_directory_is_an_error, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_none_source_is_synced_and_empty, setup,
						teardown),
	};
	static const uint8_t key[16] = { 3 };
	int r;

	wire_set_hash_key(key);
	urcu_memb_register_thread();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	urcu_memb_unregister_thread();
	return r;
}
