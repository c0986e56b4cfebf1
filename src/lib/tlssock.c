/* The socket BIO without SIGPIPE (tlssock.h). */
#include "lib/tlssock.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_ok;
static BIO_METHOD *nosig_method;

/* OpenSSL's socket BIO, except that writing uses send(..., MSG_NOSIGNAL). */
static int
nosig_write(BIO *b, const char *data, int len)
{
    int fd = (int)BIO_get_fd(b, NULL);
    ssize_t n;

    errno = 0;
    n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n <= 0 && BIO_sock_should_retry((int)n)) {
        BIO_set_retry_write(b);
    }
    return (int)n;
}

static void
init_openssl(void)
{
    const BIO_METHOD *sock;

    init_ok = OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
    if (init_ok != 1) {
        return;
    }
    sock = BIO_s_socket();
    nosig_method = BIO_meth_new(BIO_TYPE_SOCKET, "blnkproxy socket");
    if (nosig_method == NULL || BIO_meth_set_write(nosig_method, nosig_write) != 1 ||
        BIO_meth_set_read(nosig_method, BIO_meth_get_read(sock)) != 1 ||
        BIO_meth_set_puts(nosig_method, BIO_meth_get_puts(sock)) != 1 ||
        BIO_meth_set_ctrl(nosig_method, BIO_meth_get_ctrl(sock)) != 1 ||
        BIO_meth_set_create(nosig_method, BIO_meth_get_create(sock)) != 1 ||
        BIO_meth_set_destroy(nosig_method, BIO_meth_get_destroy(sock)) != 1) {
        init_ok = 0;
    }
}

bp_err
bp_tlssock_init(void)
{
    pthread_once(&init_once, init_openssl);
    return init_ok == 1 ? BP_OK : BP_ERR_IO;
}

BIO *
bp_tlssock_bio(int fd)
{
    BIO *bio = BIO_new(nosig_method);

    if (bio != NULL) {
        BIO_set_fd(bio, fd, BIO_NOCLOSE);
    }
    return bio;
}
