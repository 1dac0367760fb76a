/* The intrusive list: a splice moves a whole list, in order, and leaves the source empty and reusable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "util/list.h"
#include "util/mem.h"

typedef struct {
    int v;
    rt_list_t link;
} item_t;

static void expect(rt_list_t *head, const int *want, size_t n)
{
    size_t i = 0;
    rt_list_t *l, *tmp;
    rt_list_foreach_safe(l, tmp, head) {
        assert_true(i < n);
        assert_int_equal(RT_STRUCT_FROM_MEMBER(item_t, link, l)->v, want[i++]);
    }
    assert_int_equal(i, n);
}

static void test_splice_tail(void **state)
{
    item_t it[5];
    rt_list_t a, b;
    rt_list_init(&a);
    rt_list_init(&b);
    for (int i = 0; i < 5; i++) {
        it[i] = (item_t){.v = i};
        rt_list_insert_tail(i < 2 ? &a : &b, &it[i].link);
    }
    rt_list_splice_tail(&a, &b);
    expect(&a, (const int[]){0, 1, 2, 3, 4}, 5);
    assert_true(rt_list_empty(&b));
    rt_list_splice_tail(&a, &b); /* an empty source changes nothing */
    expect(&a, (const int[]){0, 1, 2, 3, 4}, 5);
    rt_list_splice_tail(&b, &a); /* into an empty list */
    assert_true(rt_list_empty(&a));
    expect(&b, (const int[]){0, 1, 2, 3, 4}, 5);
    rt_list_unlink(&it[2].link);
    rt_list_insert_tail(&a, &it[2].link); /* the emptied list is usable again */
    expect(&a, (const int[]){2}, 1);
    expect(&b, (const int[]){0, 1, 3, 4}, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_splice_tail)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
