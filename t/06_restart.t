# Data survives an httpd restart (SPEC §6.2): after stopping and starting
# the server, every key answers the same bytes, ETag, Last-Modified and
# version; deleted keys stay deleted; versions keep rising.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key restart_server tmp_files);

my %keys = (
    '/files/' . unique_key('rs-a') . '.txt'         => "first key\n" x 50,
    '/files/' . unique_key('rs-b') . '/deep/b.bin'  => join('', map { chr } 0 .. 255) x 40,
    '/files/' . unique_key('rs-empty') . '.txt'     => '',
);
my $replaced = '/files/' . unique_key('rs-replaced') . '.txt';
my $deleted  = '/files/' . unique_key('rs-deleted') . '.txt';

for my $k (sort keys %keys) {
    is req(PUT => $k, $keys{$k})->code, 201, "stored $k";
}
is req(PUT => $replaced, "old\n")->code, 201, 'stored a key';
is req(PUT => $replaced, "new\n")->code, 204, 'and replaced it';
$keys{$replaced} = "new\n";
is req(PUT => $deleted, "gone\n")->code, 201, 'stored another key';
is req(DELETE => $deleted)->code, 204, 'and deleted it';

my %before;
for my $k (sort keys %keys) {
    my $r = req(GET => $k);
    is $r->code, 200, "GET $k before the restart";
    $before{$k} = {
        map { $_ => scalar $r->header($_) }
            qw(ETag Last-Modified X-ClusterStorage-Version)
    };
}
my $pid_before = Apache::Test::config()->server->pid;

ok restart_server(), 'the server stopped and started again';
isnt Apache::Test::config()->server->pid, $pid_before, '(it is a new server process)';

for my $k (sort keys %keys) {
    my $r = req(GET => $k);
    is $r->code, 200, "GET $k after the restart is 200";
    is $r->content, $keys{$k}, "$k: same bytes";
    is_deeply {
        map { $_ => scalar $r->header($_) }
            qw(ETag Last-Modified X-ClusterStorage-Version)
    }, $before{$k}, "$k: same ETag, Last-Modified and version";
}
is req(GET => $deleted)->code, 404, 'the deleted key stays deleted';

# Writes after the restart continue the version sequence.
my $r = req(PUT => $replaced, "after the restart\n");
is $r->code, 204, 'PUT over an existing key after the restart is 204';
ok $r->header('X-ClusterStorage-Version')
       > $before{$replaced}{'X-ClusterStorage-Version'},
    'and its version keeps rising';
$r = req(PUT => $deleted, "back\n");
is $r->code, 201, 'PUT of the deleted key after the restart is 201';
is req(GET => $deleted)->content, "back\n", 'and it is served';

is_deeply [tmp_files()], [], 'no temp file stays behind';

done_testing;
