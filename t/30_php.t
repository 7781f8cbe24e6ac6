# PHP clients against a running cluster, with real php-cli (installed by
# scripts/deps.sh; a missing php is a failure, not a skip):
#  - t/php/wrapper_test.php: the cluster:// stream wrapper of
#    clients/php/ClusterStorage.php, writing on n1 and reading on p30;
#  - t/php/plain_http_test.php: the plain-HTTP examples of
#    clients/php/README.md.
# Each script prints TAP; every "ok"/"not ok" line becomes a test here.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(node_url unique_key php_tap);
use CSNode;

my ($php) = grep { defined && -x } $ENV{PHP}, '/usr/bin/php',
    map { "$_/php" } split /:/, $ENV{PATH} // '';
unless (ok $php, 'php-cli is installed (scripts/deps.sh installs it)') {
    done_testing;
    exit;
}
my $ver = qx{"$php" -r 'echo PHP_VERSION;' 2>&1};
ok $? == 0 && $ver =~ /^(\d+)\.(\d+)/ && ($1 > 7 || ($1 == 7 && $2 >= 4)),
    "php runs and is 7.4 or later ($ver)";

my $p30 = CSNode->new('p30', dav => 1)->start;
my $n1 = node_url() . '/dav';
my $p = $p30->url . '/dav';

run_php('t/php/wrapper_test.php', $n1, $p, unique_key('php-wrapper'));
run_php('t/php/plain_http_test.php', node_url() . '/files', $p30->url . '/files',
        unique_key('php-plain'));

# X-OC-Mtime (what touch() with a time sends): the version's time on every
# node; a malformed one is refused before the body and stores nothing.
{
    my $k = '/dav/' . unique_key('t30-mtime');
    my $r = CSTest::req(PUT => node_url() . $k, 'x', 'X-OC-Mtime' => 'yesterday');
    is $r->code, 400, 'PUT with a malformed X-OC-Mtime: 400';
    is CSTest::req(GET => $p30->url . $k)->code, 404, 'and nothing stored';
    $r = CSTest::req(PUT => node_url() . $k, 'x', 'X-OC-Mtime' => '1000000000');
    is $r->code, 201, 'PUT with X-OC-Mtime';
    is $r->header('X-OC-MTime'), 'accepted', 'answered X-OC-MTime: accepted';
    is CSTest::req(GET => $p30->url . $k)->header('Last-Modified'),
        'Sun, 09 Sep 2001 01:46:40 GMT', 'its Last-Modified on another node';
}

$p30->stop;
done_testing;

# Run a PHP script, its TAP lines as tests here (CSTest::php_tap).
sub run_php {
    my ($script, @args) = @_;
    php_tap("php $script", 300, $php, '-d', 'error_reporting=-1',
            '-d', 'allow_url_fopen=1', '-d', 'display_errors=stderr',
            $script, @args);
}
