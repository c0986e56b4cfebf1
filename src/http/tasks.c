/* Cross-thread hand-off to a loop thread. Other threads (the OAuth threads, the audit writer)
 * never touch connections: they append a task to the worker's locked list and activate an event;
 * the loop runs the tasks in order, on its own thread, where touching connections is safe. */
#include "http/http-int.h"

#include "lib/bug.h"

static void
run_all(struct bp_worker *w)
{
    struct bp_http_task *t;

    pthread_mutex_lock(&w->tasks_lock);
    t = w->tasks_head;
    w->tasks_head = NULL;
    w->tasks_tail = NULL;
    pthread_mutex_unlock(&w->tasks_lock);
    while (t != NULL) {
        struct bp_http_task *next = t->next;
        t->next = NULL;
        t->run(w, t); /* may free t */
        t = next;
    }
}

static void
tasks_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_all(arg);
}

bp_err
bp_http__tasks_init(struct bp_worker *w)
{
    if (pthread_mutex_init(&w->tasks_lock, NULL) != 0) {
        return BP_ERR_IO;
    }
    w->tasks_ev = event_new(w->base, -1, 0, tasks_cb, w);
    return w->tasks_ev != NULL ? BP_OK : BP_ERR_IO;
}

void
bp_http__post(struct bp_worker *w, struct bp_http_task *t)
{
    bool was_empty;

    BP_BUG_ON(t->run == NULL);
    t->next = NULL;
    pthread_mutex_lock(&w->tasks_lock);
    was_empty = w->tasks_head == NULL;
    if (was_empty) {
        w->tasks_head = t;
    } else {
        w->tasks_tail->next = t;
    }
    w->tasks_tail = t;
    /* Activated under the lock: the loop cannot have freed the event (tasks_fini takes the lock). */
    if (was_empty && w->tasks_ev != NULL) {
        event_active(w->tasks_ev, 0, 0);
    }
    pthread_mutex_unlock(&w->tasks_lock);
}

void
bp_http__tasks_fini(struct bp_worker *w)
{
    if (w->tasks_ev == NULL) {
        return;
    }
    pthread_mutex_lock(&w->tasks_lock);
    event_free(w->tasks_ev);
    w->tasks_ev = NULL;
    pthread_mutex_unlock(&w->tasks_lock);
    run_all(w);
    pthread_mutex_destroy(&w->tasks_lock);
}
