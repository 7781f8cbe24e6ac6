package CSHttpd;
# A plain httpd process of a test that is not a cluster node (a balancer in
# front of the nodes, a reference server): its own directory under
# $CS_STATE_DIR/httpd/NAME, a free port, and a config made from a template
# in t/lib with @VAR@ placeholders.  The life-cycle is CSNode's: ->start
# waits until it answers, ->stop, and every one a test file started is
# stopped when the file ends.
use strict;
use warnings;

use File::Path qw(make_path);
use CSTest qw(req wait_for);
use CSNode ();
# pid and alive are CSNode's (the same httpd.pid in its directory).
use parent -norequire, 'CSNode';

my $REPO = $ENV{CS_REPO} or die "CS_REPO is not set (run via scripts/test.sh)";
# The httpd binary (scripts/httpd-asan for the AddressSanitizer pass).
my $HTTPD = $ENV{CS_HTTPD} || '/usr/sbin/apache2';

# CSHttpd->new(NAME, template => 'FILE in t/lib', vars => { VAR => VALUE },
#              dirs => [ subdirectories of its directory to create ],
#              edit => sub { $_[0] is the config text },
#              port => PORT, a fixed port instead of a free one)
# Every template gets DIR (its directory), PORT and MODULES (httpd's module
# directory) besides the given vars.
sub new {
    my ($class, $name, %opt) = @_;
    my $dir = "$ENV{CS_STATE_DIR}/httpd/$name";
    my $self = bless {
        name     => $name,
        dir      => $dir,
        port     => $opt{port} || CSNode::free_port(),
        template => $opt{template} || die("CSHttpd $name: no template"),
        vars     => $opt{vars} || {},
        edit     => $opt{edit},
    }, $class;
    make_path($dir, "$ENV{CS_STATE_DIR}/nodes",
              map { "$dir/$_" } @{ $opt{dirs} || [] });
    $self->write_conf;
    return $self;
}

sub write_conf {
    my ($self) = @_;
    open my $in, '<', "$REPO/t/lib/$self->{template}"
        or die "$self->{template}: $!";
    local $/;
    my $conf = <$in>;
    my %v = (DIR => $self->{dir}, PORT => $self->{port},
             MODULES => $ENV{CS_APACHE_MODULES}, %{ $self->{vars} });
    $conf =~ s/@(\w+)@/exists $v{$1} ? $v{$1} : die "no value for $1"/ge;
    $self->{edit}->($conf) if $self->{edit};
    open my $out, '>', "$self->{dir}/httpd.conf" or die $!;
    print $out $conf;
    close $out;
}

sub name { $_[0]{name} }
sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub url  { "http://127.0.0.1:$_[0]{port}" }
sub error_log  { "$_[0]{dir}/error_log" }
sub access_log { "$_[0]{dir}/access_log" }

# Stopped when the test file ends, also when it dies half-way (not by the
# file's forked children).
my $MAIN_PID = $$;
my @STARTED;
END {
    local $?;
    if ($$ == $MAIN_PID) { $_->alive && $_->stop for @STARTED }
}

# True once URL gets an answer from the server itself: LWP reports a
# refused connection as its own ("internal") 500.
sub answers {
    my ($url) = @_;
    my $r = req(GET => $url);
    return ($r->header('Client-Warning') // '') ne 'Internal response';
}

# Start and wait until it answers HTTP (any status) on /.
sub start {
    my ($self) = @_;
    push @STARTED, $self unless grep { $_ == $self } @STARTED;
    # Bounded: a start that hangs fails the test instead of the suite.
    my $out = qx{timeout 60 $HTTPD -f "$self->{dir}/httpd.conf" -k start 2>&1};
    die "httpd $self->{name} did not start: $out" . $self->log_tail if $?;
    wait_for(30, sub { $self->pid && answers($self->url . '/') })
        or die "httpd $self->{name} does not answer: " . $self->log_tail;
    # For the runner's clean-up of leftovers (CSTest::stop_all_nodes).
    if (open my $fh, '>', "$ENV{CS_STATE_DIR}/nodes/httpd-$self->{name}.pid") {
        print $fh $self->pid;
    }
    return $self;
}

sub stop {
    my ($self) = @_;
    my $pid = $self->pid or return;
    system($HTTPD, '-f', "$self->{dir}/httpd.conf", '-k', 'stop');
    wait_for(30, sub { !kill 0, $pid }) or kill 'KILL', -$pid;
    unlink "$self->{dir}/httpd.pid";
}

# The last N (20) lines of FILE (its error log).
sub log_tail {
    my ($self, $n, $file) = @_;
    $n ||= 20;
    open my $fh, '<', $file || $self->error_log or return '';
    my @l = <$fh>;
    $n = @l if $n > @l;
    return join '', @l[ -$n .. -1 ];
}

1;
