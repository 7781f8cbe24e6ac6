# What the cluster did, per request, in the access log (the notes of the
# README's LogFormat line): a PUT is "written", a GET of the node's own
# copy a "hit" (with where its registry entry came from), the first GET on
# a node without a copy "fetched" from the holder (named, with the
# fetch's time), a GET of a key that is not there "absent", a DELETE
# "deleted", and a GET while no holder can be reached "unavailable".
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;

my $fmt = '%m %U %>s %{clusterstorage-served}n %{clusterstorage-from}n '
        . '%{clusterstorage-fetch-ms}n %{clusterstorage-lookup}n';
my $log = sub {
    my ($dir) = @_;
    sub { $_[0] .= "\nLogFormat \"$fmt\" cluster\nCustomLog $dir/access_log cluster\n" }
};
# One copy of each key: the second node has to fetch it.
my $A = CSNode->new('l62a', replicas => 1);
$A->{edit} = $log->($A->{dir});
$A->write_conf;
my $B = CSNode->new('l62b', replicas => 1);
$B->{edit} = $log->($B->{dir});
$B->write_conf;
$_->start for $A, $B;

# The access log line of the last request for path on node n.
sub line_of {
    my ($n, $method, $path, $count) = @_;
    my @l;
    wait_for(10, sub {
        open my $fh, '<', "$n->{dir}/access_log" or return 0;
        @l = grep { /^\Q$method $path \E/ } <$fh>;
        @l >= $count;
    });
    chomp @l;
    return $l[$count - 1] // '';
}

my $k = '/files/' . unique_key('t62') . '.txt';
is req(PUT => $A->url . $k, 'logged bytes')->code, 201, 'PUT through a';
like line_of($A, PUT => $k, 1), qr/^PUT \Q$k\E 201 written - - /,
    'the PUT is logged as written';
is req(GET => $A->url . $k)->code, 200, 'GET through a';
like line_of($A, GET => $k, 1), qr/^GET \Q$k\E 200 hit - - (cache|memcached|database)$/,
    'a GET of its own copy is a hit, with where the entry came from';
is req(GET => $B->url . $k)->content, 'logged bytes', 'GET through b';
like line_of($B, GET => $k, 1), qr/^GET \Q$k\E 200 fetched l62a \d+ \w+$/,
    'the first GET through b is fetched from a, with the fetch time in ms';
is req(GET => $B->url . $k)->code, 200, 'GET through b again';
like line_of($B, GET => $k, 2), qr/^GET \Q$k\E 200 hit - - \w+$/,
    'then a hit';

my $k2 = '/files/' . unique_key('t62') . '.txt';
is req(PUT => $A->url . $k2, 'only on a')->code, 201, 'another key, only on a';
is req(GET => $B->url . "$k.none")->code, 404, 'a key that is not there';
like line_of($B, GET => "$k.none", 1), qr/^GET \Q$k.none\E 404 absent /,
    'is logged as absent';
$A->stop;
is req(GET => $B->url . $k2)->code, 503, 'a key whose holder is stopped: 503';
like line_of($B, GET => $k2, 1), qr/^GET \Q$k2\E 503 unavailable /,
    'is logged as unavailable';
$A->start;
is req(DELETE => $B->url . $k)->code, 204, 'DELETE through b';
like line_of($B, DELETE => $k, 1), qr/^DELETE \Q$k\E 204 deleted /,
    'is logged as deleted';

done_testing;
